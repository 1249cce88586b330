"""crontab files (crontab(5), read as cronie and Vixie cron read them) turned
into job definitions.

Pure: text in, jobs and per-line problems out; no I/O, so every rule is unit
tested on strings. `cronctl import crontab` is the thin command around it.

The rules, as cron's own parser (cronie entry.c, env.c, do_command.c) has them:
- blank lines and lines whose first non-blank character is ``#`` are skipped;
  a ``#`` later in a line is part of it (cron has no trailing comments);
- ``NAME=value`` lines (spaces around ``=`` allowed, value optionally in
  single or double quotes, unquoted values trimmed) apply to the entries
  after them. SHELL, MAILTO, CRON_TZ and HOME mean something to cron and are
  mapped below; the others become the job's environment, literally (cron
  expands no ``$VAR`` there, and neither does crontrio);
- an entry is five time fields (or a macro) then, in the system format
  (/etc/crontab, /etc/cron.d/*), a user name, then the command: the rest of
  the line. Its first unescaped ``%`` ends the command; what follows is its
  standard input, each further ``%`` a newline (``\\%`` is a literal ``%``);
- ``@reboot`` has no equivalent (there is no boot of a distributed cron): it
  is imported paused, with a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shlex
from dataclasses import dataclass, field

from crontrio.common.cron import validate_timezone
from crontrio.common.errors import ValidationError
from crontrio.common.jobs import validate_job
from crontrio.common.model import NOTIFY_NEVER, NOTIFY_ON_FAILURE, Job
from crontrio.common.task_rules import ENV_NAME_RE

DEFAULT_SHELL = "/bin/sh"
DEFAULT_STEM = "crontab"
# The spec a @reboot entry gets: something valid to store paused. It never
# fires while paused; the warning says to give it a real one before resuming.
REBOOT_PLACEHOLDER_SPEC = "@yearly"
MACROS = ("@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# Variables cron (cronie) reads for its mails or its own timing: they configure
# nothing crontrio has, so they are dropped with a warning rather than passed on.
IGNORED_VARIABLES = {
    "MAILFROM": "cron's mail sender; crontrio's alerts use [alert] mail_from",
    "CONTENT_TYPE": "a header of cron's mails",
    "CONTENT_TRANSFER_ENCODING": "a header of cron's mails",
    "RANDOM_DELAY": "cronie's random start delay; crontrio fires on time (use H in a spec to spread jobs)",
    "LOGNAME": "cron does not let a crontab change it (it is the job's user)",
    "USER": "cron does not let a crontab change it (it is the job's user)",
}

_FIELD_RE = re.compile(r"[0-9A-Za-z*,/-]+")
_WORD_RE = re.compile(r"[A-Za-z]+")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_LOOKS_LIKE_ENV_RE = re.compile(r"""^(?:[^\s=]+|'[^']*'|"[^"]*")\s*=""")
_NAME_CHARS_RE = re.compile(r"[^A-Za-z0-9._-]+")
HASH_CHARS = 8  # hex digits of the line's hash in a job name


@dataclass(frozen=True)
class Problem:
    """Something about one line (line 0: about the whole file)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True)
class Entry:
    """One cron entry with the settings in force at its line."""

    line: int  # 1-based
    text: str  # the line as written, without surrounding blanks
    spec: str  # five fields or a macro, as written
    command: str  # the command, `\\%` already turned into `%`
    stdin: str  # standard input after the first unescaped `%` ("" = none)
    user: str = ""  # the system format's user column
    env: dict[str, str] = field(default_factory=dict)
    shell: str = DEFAULT_SHELL
    mailto: tuple[str, ...] | None = None  # None: no MAILTO line; (): MAILTO=""
    cron_tz: str = ""
    home: str = ""  # HOME set in the crontab: cron starts the command there
    reboot: bool = False


@dataclass(frozen=True)
class ImportOptions:
    """What the command line adds to every job of a file."""

    stem: str = DEFAULT_STEM  # job names are <stem>-<hash of the line>
    timezone: str = "UTC"  # used when no CRON_TZ is in force
    target: str = ""
    user: str = ""  # run-as user of a user crontab (the system format has a column)
    workdir: str = ""  # used when no HOME is set in the crontab
    paused: bool = False


@dataclass(frozen=True)
class ImportedJob:
    """A job made from one entry."""

    line: int
    text: str
    job: Job
    warnings: tuple[str, ...] = ()


@dataclass
class Parsed:
    entries: list[Entry] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


@dataclass
class Converted:
    jobs: list[ImportedJob] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


# ------------------------------------------------------------------ the file


def parse_env_line(line: str) -> tuple[str, str] | None:
    """(name, value) if ``line`` is a ``NAME=value`` line as cron reads it
    (cronie env.c load_env), else None (then it is read as an entry).

    The name may be quoted; spaces may surround ``=``; a quoted value keeps
    everything between its quotes and must be followed by blanks only; an
    unquoted value runs to the end of the line, trailing blanks trimmed.
    """
    s = line.strip()
    i = 0
    if s[:1] in ("'", '"'):
        end = s.find(s[0], 1)
        if end < 0:
            return None
        name, i = s[1:end], end + 1
    else:
        while i < len(s) and s[i] != "=" and not s[i].isspace():
            i += 1
        name = s[:i]
    while i < len(s) and s[i].isspace():
        i += 1
    if i >= len(s) or s[i] != "=" or not name:
        return None
    rest = s[i + 1 :].lstrip()
    if rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        if end < 0 or rest[end + 1 :].strip():
            return None  # unterminated, or more after the closing quote
        return name, rest[1:end]
    return name, rest.rstrip()


def split_command(raw: str) -> tuple[str, str]:
    """(command, stdin) of an entry's command part (cronie do_command.c).

    The first unescaped ``%`` ends the command; in the command ``\\%`` is a
    literal ``%`` (other backslashes stay). In the input after it, ``%`` is a
    newline, ``\\%`` a literal ``%``, and a newline ends it if it has none.
    """
    out: list[str] = []
    escaped = False
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            if ch == "%":
                out[-1] = "%"  # the backslash only escaped it
                continue
            out.append(ch)
            continue
        if ch == "\\":
            escaped = True
        elif ch == "%":
            return "".join(out), _input_text(raw[i + 1 :])
        out.append(ch)
    return "".join(out), ""


def _input_text(data: str) -> str:
    # Character for character what cron writes to the command's stdin pipe.
    out: list[str] = []
    escaped = need_newline = False
    for ch in data:
        if escaped:
            if ch != "%":
                out.append("\\")
        elif ch == "%":
            ch = "\n"
        escaped = ch == "\\"
        if not escaped:
            out.append(ch)
            need_newline = ch != "\n"
    if escaped:
        out.append("\\")
    if need_newline:
        out.append("\n")
    return "".join(out)


def _check_fields(fields: list[str]) -> str:
    """An error message for time fields cron itself would refuse, else ""."""
    for position, text in enumerate(fields):
        name = _FIELD_NAMES[position]
        if not _FIELD_RE.fullmatch(text):
            return f"{name} field {text!r} has characters cron does not accept"
        allowed = _MONTHS if position == 3 else _DAYS if position == 4 else ()
        for word in _WORD_RE.findall(text):
            if not allowed:
                return f"{name} field {text!r}: names are only allowed in month and day-of-week"
            if word.lower() not in allowed:
                return f"{name} field {text!r}: {word!r} is not a {name} name"
    return ""


class _Settings:
    """The NAME=value lines in force, as cron accumulates them."""

    def __init__(self) -> None:
        self.env: dict[str, str] = {}
        self.shell = DEFAULT_SHELL
        self.mailto: tuple[str, ...] | None = None
        self.cron_tz = ""
        self.home = ""

    def apply(self, line: int, name: str, value: str, parsed: Parsed) -> None:
        if name == "SHELL":
            self.shell = value or DEFAULT_SHELL
            self.env["SHELL"] = self.shell
        elif name == "MAILTO":
            self.mailto = tuple(a.strip() for a in value.split(",") if a.strip())
        elif name == "CRON_TZ":
            try:
                self.cron_tz = validate_timezone(value) if value else ""
            except ValidationError as exc:
                parsed.errors.append(Problem(line, f"CRON_TZ: {exc.message}"))
        elif name in IGNORED_VARIABLES:
            parsed.warnings.append(Problem(line, f"{name} ignored: {IGNORED_VARIABLES[name]}"))
        elif not ENV_NAME_RE.fullmatch(name):
            parsed.errors.append(Problem(line, f"env: {name!r} is not a valid environment variable name"))
        else:
            if name == "HOME":
                self.home = value
            self.env[name] = value


def parse_crontab(text: str, *, system: bool = False) -> Parsed:
    """Every entry of a crontab with the settings in force at it; errors and
    warnings per line. ``system``: the /etc/crontab format (a user column)."""
    parsed = Parsed()
    settings = _Settings()
    for number, raw in enumerate(text.split("\n"), start=1):  # cron splits on \n only
        line = raw.rstrip("\r")  # a file edited on Windows
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        assignment = parse_env_line(stripped)
        if assignment is not None:
            settings.apply(number, *assignment, parsed)
            continue
        try:
            parsed.entries.append(_entry(number, stripped, settings, system, parsed))
        except ValueError as exc:
            parsed.errors.append(Problem(number, str(exc)))
    return parsed


def _entry(number: int, line: str, settings: _Settings, system: bool, parsed: Parsed) -> Entry:
    body = line
    if body.startswith("-"):  # cronie: "do not syslog this job"
        parsed.warnings.append(Problem(number, "the '-' prefix (do not syslog) has no crontrio equivalent; ignored"))
        body = body[1:]
    words = body.split(None, 1)
    if body.startswith("@"):
        macro = words[0]
        if macro not in MACROS:
            raise ValueError(f"unknown macro {macro!r} (cron knows {', '.join(MACROS)})")
        spec, rest = ("@yearly" if macro == "@annually" else macro), (words[1] if len(words) > 1 else "")
    else:
        parts = body.split(None, 5)
        if len(parts) < 6:
            if _LOOKS_LIKE_ENV_RE.match(body):
                raise ValueError("not a valid NAME=value line: a quote is not closed, or text follows the closing quote")
            raise ValueError("not an entry: expected five time fields and a command, or NAME=value")
        message = _check_fields(parts[:5])
        if message:
            raise ValueError(f"spec: {message}")
        spec, rest = " ".join(parts[:5]), parts[5]
    user = ""
    if system:
        user_and_rest = rest.split(None, 1)
        if len(user_and_rest) < 2:
            raise ValueError("expected a user name and a command after the time fields (system crontab format)")
        user, rest = user_and_rest
    if not rest.strip():
        raise ValueError("no command after the time fields")
    command, stdin = split_command(rest)
    if not command.strip():
        raise ValueError("the command before the first '%' is empty")
    return Entry(
        line=number,
        text=line,
        spec=spec,
        command=command,
        stdin=stdin,
        user=user,
        env=dict(settings.env),
        shell=settings.shell,
        mailto=settings.mailto,
        cron_tz=settings.cron_tz,
        home=settings.home,
        reboot=spec == "@reboot",
    )


# ------------------------------------------------------------------ the jobs


def heredoc_delimiter(body: str) -> str:
    """A here-document delimiter that is no line of ``body``."""
    digest = hashlib.sha256(body.encode()).hexdigest().upper()
    lines = set(body.split("\n"))
    delimiter = f"CRONTRIO_STDIN_{digest[:12]}"
    n = 0
    while delimiter in lines:
        n += 1
        delimiter = f"CRONTRIO_STDIN_{digest[:12]}_{n}"
    return delimiter


def shell_command(command: str, stdin: str = "", shell: str = DEFAULT_SHELL) -> str:
    """The job command that does what cron does with ``command``: run it with
    ``shell -c`` and feed it ``stdin``.

    The executor runs every job as ``/bin/sh -c <job command>`` with stdin
    from /dev/null, so: the plain command when neither applies; otherwise
    ``exec SHELL -c '<command>'`` (the command quoted whole, so whatever it
    contains stays one argument, as cron passes it), with its input as a
    quoted here-document (no expansion inside) under a delimiter that is no
    line of the input.
    """
    if not stdin and shell == DEFAULT_SHELL:
        return command
    runner = f"exec {shlex.quote(shell)} -c {shlex.quote(command)}"
    if not stdin:
        return runner
    body = stdin if stdin.endswith("\n") else stdin + "\n"
    delimiter = heredoc_delimiter(body)
    return f"{runner} <<'{delimiter}'\n{body}{delimiter}"


def stem_of(name: str) -> str:
    """A job-name prefix made of a file name (its stem, in the allowed characters)."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    if base.endswith((".cron", ".crontab", ".txt")):
        base = base.rsplit(".", 1)[0]
    stem = _NAME_CHARS_RE.sub("-", base).strip("-._")[:80]
    return stem or DEFAULT_STEM


def job_names(stem: str, texts: list[str]) -> list[str]:
    """``<stem>-<hash of the line>`` for each entry line: the same line gives
    the same name on every import; a repeated line gets a name per copy."""
    seen: dict[str, int] = {}
    names = []
    for text in texts:
        copy = seen.get(text, 0)
        seen[text] = copy + 1
        key = text if copy == 0 else f"{text}\n#{copy + 1}"
        names.append(f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:HASH_CHARS]}")
    return names


def entry_job(entry: Entry, name: str, options: ImportOptions) -> tuple[Job, list[str]]:
    """The job for one entry and its warnings; ValidationError naming the field."""
    warnings: list[str] = []
    spec = entry.spec
    if entry.reboot:
        spec = REBOOT_PLACEHOLDER_SPEC
        warnings.append(
            "@reboot: crontrio has no boot to run it at; imported paused with the placeholder spec "
            f"{REBOOT_PLACEHOLDER_SPEC} (run it with `cronctl job run {name}`, or give it a real --spec before resuming)"
        )
    emails = entry.mailto or ()
    job = Job(
        name=name,
        spec=spec,
        timezone=entry.cron_tz or options.timezone,
        command=shell_command(entry.command, entry.stdin, entry.shell),
        env=dict(entry.env),
        run_as_user=entry.user or options.user,
        target=options.target,
        workdir=entry.home or options.workdir,
        enabled=not (entry.reboot or options.paused),
        notify_policy=NOTIFY_ON_FAILURE if emails else NOTIFY_NEVER,
        notify_channels=("email",) if emails else (),
        notify_emails=tuple(emails),
    )
    job = validate_job(job)
    return job, warnings


def convert(text: str, options: ImportOptions, *, system: bool = False) -> Converted:
    """Every entry of a crontab as a validated job; errors and warnings by line."""
    parsed = parse_crontab(text, system=system)
    out = Converted(errors=list(parsed.errors), warnings=list(parsed.warnings))
    names = job_names(options.stem, [e.text for e in parsed.entries])
    for entry, name in zip(parsed.entries, names, strict=True):
        try:
            job, warnings = entry_job(entry, name, options)
        except ValidationError as exc:
            out.errors.append(Problem(entry.line, str(exc)))
            continue
        out.jobs.append(ImportedJob(entry.line, entry.text, job, tuple(warnings)))
        out.warnings.extend(Problem(entry.line, w) for w in warnings)
    if parsed.entries and all(e.mailto is None for e in parsed.entries):
        out.warnings.append(
            Problem(0, "no MAILTO: cron would mail each job's output to the crontab's owner; these jobs send no alerts")
        )
    if parsed.entries and any(not e.home for e in parsed.entries) and not options.workdir:
        out.warnings.append(
            Problem(
                0,
                "cron starts commands in the user's HOME; without HOME= or --workdir they start in the executor's"
                " working directory",
            )
        )
    out.errors.sort(key=lambda p: p.line)
    out.warnings.sort(key=lambda p: p.line)
    return out


# The fields an import decides (from the crontab and the command line). The
# others (retries, timeout, overlap policy, ...) keep what the job has: an
# operator may tune an imported job, and a second import must neither call
# that a conflict nor undo it. Paused or not is operation, not definition.
IMPORTED_FIELDS = (
    "spec",
    "timezone",
    "type",
    "command",
    "env",
    "run_as_user",
    "target",
    "workdir",
    "notify_policy",
    "notify_channels",
    "notify_emails",
)


def same_job(stored: Job, wanted: Job) -> bool:
    """Whether a stored job already is what the import wants."""
    return all(getattr(stored, f) == getattr(wanted, f) for f in IMPORTED_FIELDS)


def merged(stored: Job, wanted: Job) -> Job:
    """The stored job with the fields an import decides taken from ``wanted``."""
    return dataclasses.replace(stored, **{f: getattr(wanted, f) for f in IMPORTED_FIELDS})
