"""The static rule table: what in a release's source is a finding, and how bad, by phase.

GuardDog's source-code heuristics (DataDog/guarddog, ``analyzer/sourcecode``) are
the reference; each rule here is one of them (or a few merged) re-done over the
syntax tree (`static_facts`) plus a few regexes. A rule looks at one `Scope` — a
run of statements that execute together — so "reads ``~/.ssh`` *and* sends" means
both in the same function or module body, not somewhere in a 5000-line package.

Severity depends on where the code would run, one column per phase::

    (install/import, run, tests)   run = only when something calls the function

Install and import are what every user of the package gets; ``run`` code may
never execute; a test suite does odd things legitimately. Benign look-alikes
(setup.py spawning a compiler or ``git``, env reads of CI variables, tests that
open sockets) stay at low/info or do not match at all.
"""

from __future__ import annotations

import ast
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from slave.findings.model import Severity
from slave.findings.static_facts import (
    Scope,
    call_matches,
    constant_text,
    contains_call,
    dotted,
    tainted_names,
)

Hit = tuple[ast.AST, str]  # (node for file:line, extra target text or "")
Matcher = Callable[[Scope], Iterable[Hit]]


@dataclass(frozen=True, slots=True)
class StaticRule:
    """One row: id, behaviour class (as in profiles), severities (install/import, run, tests)."""

    id: str
    kind: str
    description: str
    early: Severity | None  # install and import
    run: Severity | None
    tests: Severity | None
    match: Matcher

    def severity(self, phase: str) -> Severity | None:
        if phase in ("install", "import"):
            return self.early
        return self.tests if phase == "tests" else self.run


# ---------------------------------------------------------------------------- vocabulary

SPAWN = (
    "os.system", "os.popen", "os.execl", "os.execle", "os.execlp", "os.execlpe", "os.execv",
    "os.execve", "os.execvp", "os.execvpe", "os.spawnl", "os.spawnle", "os.spawnlp",
    "os.spawnlpe", "os.spawnv", "os.spawnve", "os.spawnvp", "os.spawnvpe", "os.posix_spawn",
    "os.posix_spawnp", "os.startfile", "subprocess.Popen", "subprocess.call", "subprocess.run",
    "subprocess.check_call", "subprocess.check_output", "subprocess.getoutput",
    "subprocess.getstatusoutput", "commands.getoutput", "pty.spawn",
    "asyncio.create_subprocess_shell", "asyncio.create_subprocess_exec",
)  # fmt: skip
EXEC = ("exec", "eval", "execfile", "builtins.exec", "builtins.eval", "__builtins__.exec",
        "__builtins__.eval", "compile", "builtins.compile", "types.FunctionType")  # fmt: skip
DECODE = (
    "base64.b64decode", "base64.b32decode", "base64.b16decode", "base64.b85decode",
    "base64.a85decode", "base64.decodebytes", "base64.decodestring", "base64.urlsafe_b64decode",
    "base64.standard_b64decode", "binascii.a2b_base64", "binascii.unhexlify", "binascii.a2b_hex",
    "zlib.decompress", "gzip.decompress", "bz2.decompress", "lzma.decompress", "marshal.loads",
    "codecs.decode", "bytes.fromhex", "bytearray.fromhex", "chr", "pickle.loads",
)  # fmt: skip
FETCH = (
    "urllib.request.urlopen", "urllib.request.urlretrieve", "urllib.request.Request",
    "urllib.urlopen", "urllib.urlretrieve", "urllib2.urlopen", "urllib2.Request", "requests",
    "httpx", "http.client.HTTPConnection", "http.client.HTTPSConnection", "wget.download",
    "urllib3.PoolManager", "aiohttp.ClientSession", "pycurl.Curl",
)  # fmt: skip
SOCKET = ("socket.socket", "socket.create_connection")
SEND = (*FETCH, *SOCKET, "smtplib.SMTP", "smtplib.SMTP_SSL", "ftplib.FTP", "telnetlib.Telnet",
        "socket.gethostbyname", "dns.resolver")  # fmt: skip
STEGO = ("steganography", "stegano", "lsb", "?.reveal", "?.getpixel", "?.getdata")
CLIPBOARD = ("pyperclip", "clipboard", "win32clipboard", "?.clipboard_get", "?.clipboard_append")
ENV_DUMP_FUNCS = ("dict", "str", "repr", "json.dumps", "list")

# Commands no benign setup.py needs (download, reverse shells, LOLBins, decoding into a shell).
DANGEROUS_COMMAND = re.compile(
    r"\b(curl|wget|nc|ncat|netcat|socat|telnet|tftp|powershell|mshta|certutil|bitsadmin|"
    r"rundll32|regsvr32|crontab)\b|/dev/(tcp|udp)/|base64\s+(-d|--decode)|\|\s*(ba|z)?sh\b",
    re.IGNORECASE,
)
# What setup.py legitimately runs (GuardDog's list, plus compilers and file tools).
BUILD_COMMAND = re.compile(
    r"(setup\.py|twine|\bgit\b|brew|gpg|freeze|docker|pycodestyle|libffi|coverage|pre.commit|"
    r"pkg-config|cmake|pandoc|unittest|sys\.executable|\bmake\b|\bgcc|\bg\+\+|\bc\+\+|\bcc\b|"
    r"clang|cython|swig|nvcc|\bld\b|\bar\b|xcrun|autoreconf|autogen|configure|\bnpm\b|yarn|"
    r"cargo|rustc|\bgo\b|meson|ninja|\bpatch\b|\btar\b|unzip|\bcp\b|\bmv\b|\brm\b|mkdir|"
    r"\bln\b|\becho\b|uname|\bwhich\b|lsb_release|nproc|sysctl|ldconfig|llvm-config|\bnm\b|"
    r"strip|otool|install_name_tool|protoc|sphinx|doxygen|qmake|moc|rcc|pyuic|javac|mvn|gradle)",
    re.IGNORECASE,
)
REVERSE_SHELL_TEXT = re.compile(
    r"(ba)?sh\s+-i\s*>&\s*/dev/(tcp|udp)/|\bnc(at)?\s+[^\n]*-e\s+/bin/(ba)?sh|"
    r"/dev/tcp/\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/\d+",
    re.IGNORECASE,
)
SHELL_NAMES = re.compile(r"^(/bin/|/usr/bin/)?(ba|z|da|k)?sh$|cmd(\.exe)?$|powershell", re.I)
# Files whose content is a secret: credentials, keys, browser and wallet stores.
CREDENTIAL_PATH = re.compile(
    r"\.ssh(/|\\|$)|id_rsa|id_ed25519|\.aws[/\\]credentials|\.docker[/\\]config\.json|"
    r"\.netrc|\.pypirc|\.git-credentials|\.kube[/\\]config|/etc/shadow|"
    r"Login Data|Local State|cookies\.sqlite|logins\.json|key[34]\.db|wallet\.dat|"
    r"\.electrum|Exodus|\.config/solana|keystore|discord[/\\]Local Storage|"
    r"nkbihfbeogaeaoehlefnkodbefgpgknn|\.bash_history|\.zsh_history|\.gnupg|"
    # Windows stealers: browser profiles, Discord's leveldb, Telegram's session, token regexes
    r"(Chrome|Chromium|Edge|Brave-Browser|YandexBrowser|Vivaldi)[/\\]+User Data|"
    r"Opera Software[/\\]+Opera|Local Storage[/\\]+leveldb|Telegram Desktop[/\\]+tdata|"
    r"dQw4w9WgXcQ:|mfa\\?\.[^\n]{0,12}\{84\}|"
    r"\{2[3-6](,\d+)?\}\\?\.[^\n]{0,20}\{6\}\\?\.[^\n]{0,20}\{(2[5-9]|3\d)(,\d+)?\}",
    re.IGNORECASE,
)
SECRET_ENV = re.compile(r"(SECRET|TOKEN|PASSW|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)
PERSISTENCE_PATH = re.compile(
    r"\.bashrc|\.bash_profile|\.zshrc|\.zprofile|(^|[/~])\.profile$|/etc/profile|/etc/cron|"
    r"/var/spool/cron|\bcrontab\b|/etc/systemd/|\.config/systemd|\.config/autostart|"
    r"/etc/rc\.local|/etc/init\.d|authorized_keys|/etc/ld\.so\.preload|LaunchAgents|"
    r"LaunchDaemons|CurrentVersion\\+Run|Start Menu\\+Programs\\+Startup",
    re.IGNORECASE,
)
WALLET_ADDRESS = re.compile(
    r"^(bc1[a-z0-9]{25,59}|[13][a-km-zA-HJ-NP-Z1-9]{25,34}|0x[0-9a-fA-F]{40})$"
)
SHADY_HOST = re.compile(
    r"(^|\.)(bit\.ly|workers\.dev|transfer\.sh|filetransfer\.io|"
    r"sendspace\.com|paste\.ee|pastebin\.com|hastebin\.com|ngrok\.io|ngrok-free\.app|"
    r"ngrok\.app|termbin\.com|localhost\.run|webhook\.site|oastify\.com|burpcollaborator\.net|"
    r"interact\.sh|oast\.(pro|live|site|online|fun|me)|rentry\.co|"
    r"requestbin\.net|pipedream\.net|canarytokens\.com|serveo\.net|portmap\.io)$",
    re.IGNORECASE,
)
ODD_TLD = re.compile(r"\.(xyz|tk|ml|ga|cf|gq|pw|top|icu|cam|uno|sbs|quest|bid|ws)$", re.I)
WEBHOOK = re.compile(
    r"discord(app)?\.com/api/webhooks/\d+/[\w-]{20,}|api\.telegram\.org/bot\d+:[\w-]{20,}",
    re.IGNORECASE,
)
URL = re.compile(r"https?://[^\s\"'<>]{3,300}", re.IGNORECASE)
# PowerShell as droppers use it (GuardDog threat-process-powershell-encoded): a hard-coded
# encoded command, or a download cradle. Code that builds -EncodedCommand at run time (to
# dodge quoting) encodes a variable; a literal base64 blob is a hidden script.
POWERSHELL_PAYLOAD = re.compile(
    r"\s[-/](e|ec|en[a-z]{0,12})\s+['\"]?[A-Za-z0-9+/]{20,}={0,2}|"
    r"\b(IEX|Invoke-Expression)\b[^\n]{0,80}(DownloadString|Invoke-WebRequest|\biwr\b|irm\b|"
    r"Invoke-RestMethod)|"
    r"Net\.WebClient\)?\s*\)?\.Download(String|File|Data)\s*\(",
    re.IGNORECASE,
)
POWERSHELL = re.compile(r"\b(powershell|pwsh)(\.exe)?\b", re.IGNORECASE)
# A Windows program or script on disk (what a dropper writes and starts).
WINDOWS_EXECUTABLE = re.compile(r"\.(exe|scr|bat|cmd|vbs|vbe|js|jse|hta|ps1|msi|pif|com)\b", re.I)
# Where Windows droppers put their payload, and how they hide starting it.
WINDOWS_STAGING = re.compile(
    r"^%?(TEMP|TMP|APPDATA|LOCALAPPDATA|PROGRAMDATA|USERPROFILE|PUBLIC)%?$|"
    r"%(TEMP|TMP|APPDATA|LOCALAPPDATA|PROGRAMDATA|USERPROFILE|PUBLIC)%|AppData[/\\]",
    re.IGNORECASE,
)
_HIDDEN_START = ("os.startfile", "ctypes.windll.shell32.ShellExecuteW",
                 "ctypes.windll.shell32.ShellExecuteA", "win32api.ShellExecute",
                 "tempfile.gettempdir", "tempfile.mkdtemp", "tempfile.mkstemp")  # fmt: skip
_HIDDEN_FLAGS = re.compile(r"CREATE_NO_WINDOW|DETACHED_PROCESS|SW_HIDE|STARTF_USESHOWWINDOW")
# What sandboxes and analysis VMs look like from inside; code that compares against these
# and then exits is hiding from analysis (pyti's guest is QEMU).
SANDBOX_MARKER = re.compile(
    r"^(vbox|virtualbox|vmware|qemu|kvm|xen|bochs|parallels|hyper-?v|hypervisor|"
    r"innotek gmbh|red hat|sandbox(ie)?|sbiedll(\.dll)?|cuckoo|joebox|anubis|"
    r"vmtoolsd(\.exe)?|vboxservice(\.exe)?|vboxtray(\.exe)?|vmwaretray(\.exe)?|"
    r"wireshark(\.exe)?|procmon(\.exe)?|x64dbg(\.exe)?|ollydbg(\.exe)?|"
    r"wdagutilityaccount|virtual machine|standard pc \(i440fx.*|standard pc \(q35.*|"
    r"/sys/class/dmi/id/\w+|/proc/scsi/scsi|/sys/hypervisor\w*)$",
    re.IGNORECASE,
)
_EXITS = ("sys.exit", "os._exit", "exit", "quit", "os.abort")
_EXEC_BITS = re.compile(r"S_IEXEC|S_IXUSR|S_IXGRP|S_IXOTH|S_IRWXU")
_DEVNULL = ("subprocess.DEVNULL", "os.devnull")


# ---------------------------------------------------------------------------- helpers


def _args(call: ast.Call) -> list[ast.AST]:
    return [*call.args, *(k.value for k in call.keywords)]


def _decodes(node: ast.AST, aliases: dict[str, str]) -> bool:
    """Decoding of hidden data: base64/zlib/marshal/codecs/hex, chr-joined, reversed text."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and aliases.get(sub.id, sub.id) == "chr":
            return True  # map(chr, codes) hands chr over without calling it
        if isinstance(sub, ast.Call):
            name = dotted(sub.func, aliases) or ""
            if call_matches(name, DECODE):
                return True
            if name.endswith(".decode") and sub.args and _const(sub.args[0]) in (
                "base64", "hex", "rot13", "rot_13", "zlib", "bz2",
            ):  # fmt: skip
                return True
        if (
            isinstance(sub, ast.Subscript)
            and isinstance(sub.slice, ast.Slice)
            and isinstance(sub.slice.step, ast.UnaryOp)
            and isinstance(sub.value, ast.Constant)
        ):
            return True  # "...tpircs"[::-1]
    return False


def _const(node: ast.AST) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def _uses(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _spawns(scope: Scope) -> list[tuple[ast.Call, str]]:
    """Process-starting calls with the constant text of their arguments."""
    return [
        (call, " ".join(constant_text(a) for a in call.args))
        for name, call in scope.calls
        if call_matches(name, SPAWN)
    ]


def _strings(scope: Scope, pattern: re.Pattern[str]) -> list[tuple[str, ast.AST]]:
    return [(text, node) for text, node in scope.strings if pattern.search(text[:4096])]


def _writes(scope: Scope) -> bool:
    """Something in the scope writes a file (open for writing, write_text, copy, append)."""
    for name, call in scope.calls:
        if name in ("open", "io.open", "os.open", "codecs.open") or name.endswith(".open"):
            mode = next((_const(a) for a in call.args[1:2]), None)
            mode = mode or next((_const(k.value) for k in call.keywords if k.arg == "mode"), None)
            if isinstance(mode, str) and re.search(r"[wax+]", mode):
                return True
            if name == "os.open" and re.search(r"O_WRONLY|O_RDWR|O_APPEND", ast.dump(call)):
                return True
        if name.endswith((".write_text", ".write_bytes")) or call_matches(
            name, ("shutil.copy", "shutil.copyfile", "shutil.copy2", "shutil.move", "os.rename")
        ):
            return True
    return False


_READ_CALLS = (
    "open", "io.open", "codecs.open", "shutil.copy", "shutil.copyfile", "shutil.copy2",
    "shutil.copytree", "sqlite3.connect", "os.listdir", "os.walk", "os.scandir", "glob.glob",
    "glob.iglob", "tarfile.open", "zipfile.ZipFile",
)  # fmt: skip


def _reads(scope: Scope) -> bool:
    """Something in the scope reads files (open, read_text, copy, sqlite, listing)."""
    return any(
        call_matches(name, _READ_CALLS) or name.endswith((".read_text", ".read_bytes", ".open"))
        for name, _ in scope.calls
    )


# ---------------------------------------------------------------------------- matchers


def _exec_of(scope: Scope, source: Callable[[ast.AST], bool]) -> Iterable[Hit]:
    """exec/eval/compile of an argument that ``source`` matches, directly or by a name
    assigned from such a value."""
    tainted = tainted_names(scope, source)
    for name, call in scope.calls:
        if call_matches(name, EXEC) and any(source(a) or _uses(a, tainted) for a in _args(call)):
            yield call, ""


def exec_encoded(scope: Scope) -> Iterable[Hit]:
    """exec/eval/compile of decoded data (GuardDog exec-base64, obfuscation)."""
    return _exec_of(scope, lambda v: _decodes(v, scope.aliases))


def exec_download(scope: Scope) -> Iterable[Hit]:
    """exec/eval of code fetched from the network."""
    return _exec_of(scope, lambda v: contains_call(v, scope.aliases, FETCH))


def download_run(scope: Scope) -> Iterable[Hit]:
    """Download, write, then make executable or run (GuardDog download-executable)."""
    fetch = scope.first(*FETCH)
    if fetch is None or not (_writes(scope) or scope.has("urllib.request.urlretrieve")):
        return
    for name, call in scope.calls:
        chmod = call_matches(name, ("os.chmod", "os.fchmod")) and any(
            _EXEC_BITS.search(ast.dump(a)) or _const(a) in (0o777, 0o755, 0o775, 0o700, 511, 493)
            for a in call.args[1:2]
        )
        if chmod or call_matches(name, SPAWN):
            yield call, ""
            return


def powershell_payload(scope: Scope) -> Iterable[Hit]:
    """PowerShell started with a hard-coded encoded command or a download cradle."""
    spawns = _spawns(scope)
    if not spawns or not any(POWERSHELL.search(t[:8192]) for t, _ in scope.strings):
        return
    # the argv's constants joined (["powershell", "-enc", BLOB]), else one string (cmd = "...")
    found = [(c, t) for c, t in spawns] + [(n, t) for t, n in scope.strings]
    for node, text in found:
        if POWERSHELL_PAYLOAD.search(text[:8192]):
            yield node, ""
            return


def download_exe(scope: Scope) -> Iterable[Hit]:
    """A Windows executable downloaded into TEMP/APPDATA (or a temp dir) and started
    (os.startfile, ShellExecute, or a hidden/detached process): a dropper whose payload
    cannot run in a Linux guest (GuardDog threat-process-download-exec)."""
    if scope.first(*FETCH) is None or not (
        _writes(scope) or scope.has("urllib.request.urlretrieve", "urllib.urlretrieve")
    ):
        return
    if not _strings(scope, WINDOWS_EXECUTABLE):
        return
    staged = bool(_strings(scope, WINDOWS_STAGING)) or scope.has(*_HIDDEN_START[4:])
    started = scope.first(*_HIDDEN_START[:4])
    hidden = [c for c, _ in _spawns(scope) if _HIDDEN_FLAGS.search(ast.dump(c))]
    run = started or next((c for c, _ in _spawns(scope)), None)
    if run is not None and (staged or hidden or started is not None):
        yield run, ""


def _exits(nodes: list[ast.stmt], aliases: dict[str, str]) -> bool:
    for stmt in nodes:
        for sub in ast.walk(stmt):
            if isinstance(sub, ast.Call) and (dotted(sub.func, aliases) or "") in _EXITS:
                return True
            if isinstance(sub, ast.Raise) and sub.exc is not None:
                exc = sub.exc.func if isinstance(sub.exc, ast.Call) else sub.exc
                if dotted(exc, aliases) == "SystemExit":
                    return True
    return False


def _marker(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and SANDBOX_MARKER.match(node.value.strip()[:200]) is not None
    )


def sandbox_evasion(scope: Scope) -> Iterable[Hit]:
    """A test against what sandboxes look like (VM vendor in DMI, hypervisor flag, analysis
    tools, sandbox user names) whose branch exits: code that hides from analysis. Reading
    the same facts to report them (py-cpuinfo, cloud SDKs) has no exit on them."""
    # names bound in this scope to marker lists: VMS = ("QEMU", "VMware"); if v in VMS: ...
    named: dict[str, ast.AST] = {}
    for node in scope.nodes:
        if isinstance(node, ast.Assign):
            found = next((n for n in ast.walk(node.value) if _marker(n)), None)
            for target in node.targets:
                if isinstance(target, ast.Name) and found is not None:
                    named[target.id] = found
    for node in scope.nodes:
        if not isinstance(node, ast.If) or not _exits(node.body, scope.aliases):
            continue
        for sub in ast.walk(node.test):
            if _marker(sub):
                yield sub, ""
                return
            if isinstance(sub, ast.Name) and sub.id in named:
                yield named[sub.id], ""
                return


def reverse_shell(scope: Scope) -> Iterable[Hit]:
    """A socket connected out and a shell on it (GuardDog threat-network-reverse-shell)."""
    for _text, node in _strings(scope, REVERSE_SHELL_TEXT):
        yield node, ""
        return
    sock = scope.first(*SOCKET)
    if sock is None:
        return
    dup2 = scope.first("os.dup2")
    pty = scope.first("pty.spawn")
    shells = [c for c, text in _spawns(scope) if any(SHELL_NAMES.search(w) for w in text.split())]
    if (dup2 is not None and (pty is not None or shells)) or pty is not None:
        yield (dup2 or pty or sock), ""


def exfiltrate(scope: Scope) -> Iterable[Hit]:
    """A credential file, key or wallet named, read, and sent (exfiltrate-sensitive-data)."""
    found = _strings(scope, CREDENTIAL_PATH)
    if found and _reads(scope) and scope.has(*SEND):
        yield found[0][1], ""


def credential_read(scope: Scope) -> Iterable[Hit]:
    """A credential file, key, browser store or wallet named and read (no send in the scope)."""
    found = _strings(scope, CREDENTIAL_PATH)
    if found and _reads(scope) and not scope.has(*SEND):
        yield found[0][1], ""


def _env_secrets(scope: Scope) -> ast.AST | None:
    """The whole environment dumped, or a secret-looking variable read."""
    for name, call in scope.calls:
        if call_matches(name, ("os.environ.items", "os.environ.copy", "os.environ.values")):
            return call
        dumped = any(dotted(a, scope.aliases) == "os.environ" for a in call.args)
        if name in ENV_DUMP_FUNCS and dumped:
            return call
        if name in ("os.getenv", "os.environ.get") and call.args:
            key = _const(call.args[0])
            if isinstance(key, str) and SECRET_ENV.search(key):
                return call
    for node in scope.nodes:
        if isinstance(node, ast.Subscript) and dotted(node.value, scope.aliases) == "os.environ":
            key = _const(node.slice)
            if isinstance(key, str) and SECRET_ENV.search(key):
                return node
    return None


def env_exfiltrate(scope: Scope) -> Iterable[Hit]:
    """Secret environment variables (or the whole environment) read and sent."""
    node = _env_secrets(scope)
    if node is not None and scope.has(*SEND):
        yield node, ""


_REGISTRY_WRITE = ("winreg.SetValueEx", "winreg.SetValue", "_winreg.SetValueEx",
                   "_winreg.SetValue", "win32api.RegSetValueEx")  # fmt: skip
_REG_ADD = re.compile(r"\breg(\.exe)?\s+add\b", re.IGNORECASE)
_SCHTASKS = re.compile(r"\bschtasks(\.exe)?\s+/create\b", re.IGNORECASE)


def persistence(scope: Scope) -> Iterable[Hit]:
    """A shell rc file, cron, systemd unit, autostart or authorized_keys written; a Windows
    Run key set (winreg, ``reg add``) or a scheduled task created (``schtasks /create``)."""
    found = _strings(scope, PERSISTENCE_PATH)
    spawns = _spawns(scope)
    spawn_text = " ".join(text for _, text in spawns)
    registry = scope.has(*_REGISTRY_WRITE) or _REG_ADD.search(spawn_text) is not None
    if found and (_writes(scope) or "crontab" in spawn_text or ">>" in spawn_text or registry):
        yield found[0][1], ""
        return
    for call, text in spawns:
        if _SCHTASKS.search(text):
            yield call, ""
            return


def dangerous_command(scope: Scope) -> Iterable[Hit]:
    """A process started with a download, reverse-shell or LOLBin command line."""
    for call, text in _spawns(scope):
        if DANGEROUS_COMMAND.search(text):
            yield call, ""


def setup_command(scope: Scope) -> Iterable[Hit]:
    """setup.py runs a command that is neither a build tool nor dangerous (code-execution)."""
    if scope.phase != "install":
        return
    for call, text in _spawns(scope):
        if not BUILD_COMMAND.search(text) and not DANGEROUS_COMMAND.search(text):
            yield call, ""


def cmd_overwrite(scope: Scope) -> Iterable[Hit]:
    """setup(cmdclass={"install"|"develop"|"egg_info": ...}) (GuardDog cmd-overwrite)."""
    if scope.phase != "install":
        return
    for name, call in scope.calls:
        if not call_matches(name, ("setup", "setuptools.setup", "distutils.core.setup")):
            continue
        for kw in call.keywords:
            if kw.arg == "cmdclass" and isinstance(kw.value, ast.Dict):
                keys = {_const(k) for k in kw.value.keys if k is not None}
                if keys & {"install", "develop", "egg_info"}:
                    yield call, ""


def silent_process(scope: Scope) -> Iterable[Hit]:
    """A process started with all output to /dev/null, or detached (silent-process-execution)."""
    for call, _ in _spawns(scope):
        quiet = {
            k.arg
            for k in call.keywords
            if k.arg in ("stdin", "stdout", "stderr")
            and any((dotted(n, scope.aliases) or "") in _DEVNULL for n in ast.walk(k.value))
        }
        detached = any(
            (k.arg == "start_new_session" and _const(k.value) is True)
            or (k.arg == "preexec_fn" and dotted(k.value, scope.aliases) == "os.setsid")
            or (k.arg == "creationflags" and "DETACHED" in ast.dump(k.value))
            for k in call.keywords
        )
        if len(quiet) == 3 or (detached and "stdout" in quiet):
            yield call, ""


def obfuscation(scope: Scope) -> Iterable[Hit]:
    """exec/eval hidden behind computed names: ``_____=eval``, getattr(builtins, "ex"+"ec")."""
    for node in scope.nodes:
        if (
            isinstance(node, ast.Assign)
            and dotted(node.value, scope.aliases) in ("eval", "exec", "compile")
            and any(isinstance(t, ast.Name) and set(t.id) == {"_"} for t in node.targets)
        ):
            yield node, ""
            return
    for name, call in scope.calls:
        if name in ("getattr", "__import__") and call.args:
            target = call.args[1] if name == "getattr" and len(call.args) > 1 else call.args[0]
            if not isinstance(target, ast.Constant) and _decodes(target, scope.aliases):
                yield call, ""
                return


def steganography(scope: Scope) -> Iterable[Hit]:
    """exec/eval of data revealed from an image (GuardDog steganography)."""
    return _exec_of(scope, lambda v: contains_call(v, scope.aliases, STEGO))


def clipboard_hijack(scope: Scope) -> Iterable[Hit]:
    """The clipboard used next to a hard-coded wallet address (clipper malware)."""
    if scope.has(*CLIPBOARD) and _strings(scope, WALLET_ADDRESS):
        yield _strings(scope, WALLET_ADDRESS)[0][1], ""


def preload(scope: Scope) -> Iterable[Hit]:
    """LD_PRELOAD set, or /etc/ld.so.preload named (library hijacking)."""
    for text, node in scope.strings:
        if "ld.so.preload" in text or text == "LD_PRELOAD":
            yield node, ""
            return


def shady_link(scope: Scope) -> Iterable[Hit]:
    """A URL to a paste site, webhook, tunnel, URL shortener, odd TLD or a raw public IP."""
    for text, node in scope.strings:
        for url in URL.findall(text[:8192]):
            host = _host(url)
            if host is None:
                continue
            if WEBHOOK.search(url):
                continue  # its own rule (static.webhook)
            if SHADY_HOST.search(host) or _public_ip(host):
                yield node, host
                return


def odd_tld(scope: Scope) -> Iterable[Hit]:
    """A URL on a top-level domain malware favours (.xyz, .tk, .top...): weak on its own."""
    for text, node in scope.strings:
        for url in URL.findall(text[:8192]):
            host = _host(url)
            if host and ODD_TLD.search(host) and not SHADY_HOST.search(host):
                yield node, host
                return


def webhook(scope: Scope) -> Iterable[Hit]:
    """A hard-coded Discord webhook or Telegram bot token: a ready exfiltration channel."""
    for text, node in scope.strings:
        if WEBHOOK.search(text[:8192]):
            yield node, ""
            return


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _public_ip(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if str(ip) in ("1.1.1.1", "8.8.8.8", "8.8.4.4"):
        return False
    return ip.is_global


# ---------------------------------------------------------------------------- the table

STATIC_RULES: tuple[StaticRule, ...] = (
    StaticRule("static.reverse_shell", "network", "socket connected out with a shell on it",
               "critical", "high", "low", reverse_shell),
    StaticRule("static.exec_download", "process", "exec/eval of code fetched from the network",
               "critical", "high", "low", exec_download),
    StaticRule("static.exfiltrate", "credentials",
               "credential, key or wallet file named where the code also sends data",
               "critical", "low", "low", exfiltrate),
    StaticRule("static.credential_read", "credentials",
               "credential, key or wallet file named", "high", "info", "info", credential_read),
    StaticRule("static.env_exfiltrate", "credentials",
               "secret environment variables (or all of them) read and sent",
               "high", "low", "info", env_exfiltrate),
    StaticRule("static.persistence", "persistence",
               "shell rc, cron, systemd, autostart or authorized_keys written",
               "high", "low", "low", persistence),
    StaticRule("static.powershell_payload", "process",
               "PowerShell with a hard-coded encoded command or a download cradle",
               "critical", "high", "low", powershell_payload),
    StaticRule("static.download_exe", "process",
               "Windows executable downloaded to TEMP/APPDATA and started (startfile, hidden)",
               "critical", "high", "low", download_exe),
    StaticRule("static.sandbox_evasion", "evasion",
               "exits when it sees a VM, sandbox or analysis tool (DMI vendor, hypervisor...)",
               "high", "medium", "info", sandbox_evasion),
    StaticRule("static.download_run", "process",
               "file downloaded, written, then made executable or run",
               "high", "medium", "low", download_run),
    StaticRule("static.exec_encoded", "obfuscation",
               "exec/eval of base64/zlib/marshal/hex/chr-decoded data",
               "high", "medium", "low", exec_encoded),
    StaticRule("static.steganography", "obfuscation", "exec/eval of data hidden in an image",
               "high", "medium", "low", steganography),
    StaticRule("static.dangerous_command", "process",
               "command line with curl/wget/nc, /dev/tcp, base64 -d | sh, LOLBins",
               "high", "medium", "low", dangerous_command),
    StaticRule("static.webhook", "network", "hard-coded Discord webhook or Telegram bot token",
               "high", "medium", "low", webhook),
    StaticRule("static.clipboard_hijack", "credentials", "clipboard next to a wallet address",
               "high", "medium", "low", clipboard_hijack),
    StaticRule("static.preload", "persistence", "LD_PRELOAD or /etc/ld.so.preload",
               "medium", "low", "info", preload),
    StaticRule("static.obfuscation", "obfuscation",
               "exec/eval reached through computed or decoded names",
               "medium", "low", "info", obfuscation),
    StaticRule("static.silent_process", "process",
               "process started silently (all stdio to /dev/null) or detached",
               "medium", "low", "info", silent_process),
    StaticRule("static.shady_link", "network",
               "URL of a paste site, tunnel, shortener, odd TLD or raw public IP",
               "medium", "low", "info", shady_link),
    StaticRule("static.odd_tld", "network", "URL on a TLD malware favours (.xyz, .tk, .top...)",
               "low", "info", None, odd_tld),
    StaticRule("static.setup_command", "process",
               "setup.py runs a command that is not a build tool", "low", None, None,
               setup_command),
    StaticRule("static.cmd_overwrite", "process",
               "setup.py replaces the install/develop/egg_info command", "low", None, None,
               cmd_overwrite),
)  # fmt: skip

# .pth lines that are known, harmless shims (setuptools, namespace packages, virtualenv).
KNOWN_PTH = re.compile(r"^(distutils-precedence\.pth|[\w.-]+-nspkg\.pth|_virtualenv\.pth|"
                       r"__editable__\..*\.pth)$")  # fmt: skip
PTH_DANGER = re.compile(
    r"exec|eval|compile|base64|b64decode|zlib|marshal|subprocess|os\.system|popen|urlopen|"
    r"urllib|requests|socket|__import__|codecs|getattr",
)

PTH_RULES: dict[str, tuple[Severity, str]] = {
    "static.pth_exec": ("high", ".pth line that runs exec/decoding/processes/network"),
    "static.pth_import": ("low", ".pth line that imports a module at every interpreter start"),
}
#: Rule id → behaviour class, for profiles (the table plus the .pth rules).
STATIC_KINDS: dict[str, str] = {r.id: r.kind for r in STATIC_RULES} | {
    rule: "persistence" for rule in PTH_RULES
}
