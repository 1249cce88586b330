"""common/crontab_file: every crontab(5) rule, as cronie and Vixie cron read it.

Commands made for stdin and SHELL are run by a real /bin/sh (as the executor
runs a job), so what arrives on stdin is checked byte for byte.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import textwrap

import pytest

from crontrio.common.cron import CronSchedule
from crontrio.common.crontab_file import (
    ImportOptions,
    convert,
    heredoc_delimiter,
    job_names,
    merged,
    parse_crontab,
    parse_env_line,
    same_job,
    shell_command,
    split_command,
    stem_of,
)
from crontrio.common.model import NOTIFY_NEVER, NOTIFY_ON_FAILURE, Job

OPTS = ImportOptions(stem="host1", timezone="UTC")


def jobs_of(text: str, options: ImportOptions = OPTS, system: bool = False) -> list[Job]:
    result = convert(textwrap.dedent(text), options, system=system)
    assert not result.errors, [str(e) for e in result.errors]
    return [j.job for j in result.jobs]


def errors_of(text: str, system: bool = False) -> list[str]:
    return [str(e) for e in convert(textwrap.dedent(text), OPTS, system=system).errors]


def run_sh(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """What the executor does with a job command: /bin/sh -c, stdin /dev/null."""
    return subprocess.run(
        ["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, capture_output=True, timeout=10, env=env, check=False
    )


# ------------------------------------------------------------ lines and comments


def test_comments_are_whole_lines_only_and_blank_lines_are_skipped() -> None:
    jobs = jobs_of(
        """
        # a comment
            # an indented comment

        0 1 * * * echo a # not a comment: cron passes it to the shell
        """
    )
    assert [j.command for j in jobs] == ["echo a # not a comment: cron passes it to the shell"]


def test_an_entry_is_five_fields_then_the_command_to_the_end_of_the_line() -> None:
    (job,) = jobs_of("*/15  2,4  1-10  *  mon-fri   /usr/bin/backup  --full   'a  b'\n")
    assert job.spec == "*/15 2,4 1-10 * mon-fri"
    assert job.command == "/usr/bin/backup  --full   'a  b'"


def test_crlf_line_ends_are_tolerated() -> None:
    (job,) = jobs_of("PATH=/bin\r\n0 1 * * * true\r\n")
    assert job.command == "true"
    assert job.env == {"PATH": "/bin"}


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("0 1 * * true", "five time fields"),
        ("61 * * * * true", "minute"),
        ("0 25 * * * true", "hour"),
        ("0 0 31 2 * true", "spec"),  # never fires
        ("0 0 * * xyz true", "'xyz' is not a day-of-week name"),
        ("0 0 * foo * true", "'foo' is not a month name"),
        ("0 0 * * L true", "day-of-week"),  # crontrio's L is not crontab(5)
        ("H H * * * true", "names are only allowed"),  # nor its H
        ("0 0 ? * * true", "characters cron does not accept"),
        ("@every 5m true", "unknown macro '@every'"),
        ("@DAILY true", "unknown macro '@DAILY'"),  # cron's macros are lower case
        ("@daily", "no command"),
        ("0 0 * * * %only input", "command before the first '%' is empty"),
        ('FOO="bar', "quote is not closed"),
        ("FOO='bar' baz", "text follows the closing quote"),
    ],
)
def test_bad_lines_are_errors_with_their_line_number(line: str, fragment: str) -> None:
    errors = errors_of(f"# header\n\n{line}\n0 1 * * * fine\n")
    assert len(errors) == 1, errors
    assert errors[0].startswith("line 3: "), errors
    assert fragment in errors[0]


def test_every_bad_line_is_reported_and_the_good_ones_still_convert() -> None:
    result = convert("61 * * * * a\n0 1 * * * b\nnonsense\n", OPTS)
    assert [e.line for e in result.errors] == [1, 3]
    assert [j.job.command for j in result.jobs] == ["b"]


def test_a_leading_dash_is_dropped_with_a_warning() -> None:
    result = convert("-0 1 * * * quiet\n", OPTS)
    assert [j.job.spec for j in result.jobs] == ["0 1 * * *"]
    assert any(w.line == 1 and "'-' prefix" in w.message for w in result.warnings)


# ------------------------------------------------------------ NAME=value lines


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("FOO=bar", ("FOO", "bar")),
        ("FOO = bar", ("FOO", "bar")),
        ("  FOO=   bar baz   ", ("FOO", "bar baz")),
        ('FOO="  spaced  "', ("FOO", "  spaced  ")),
        ("FOO='it''s'", None),  # text after the closing quote: not a NAME=value line
        ("FOO='a \"b\"'", ("FOO", 'a "b"')),
        ('FOO=""', ("FOO", "")),
        ("FOO=", ("FOO", "")),
        ("FOO=a=b", ("FOO", "a=b")),
        ('"FOO"=bar', ("FOO", "bar")),
        ("FOO=a # b", ("FOO", "a # b")),  # no trailing comments in cron
        ("PATH=$PATH:/opt/bin", ("PATH", "$PATH:/opt/bin")),  # cron expands nothing
        ("* * * * * FOO=bar cmd", None),
        ("FOO bar=baz", None),
        ("=bar", None),
    ],
)
def test_env_lines_are_read_as_cron_reads_them(line: str, expected: tuple[str, str] | None) -> None:
    assert parse_env_line(line) == expected


def test_env_lines_apply_to_the_entries_after_them_only() -> None:
    jobs = jobs_of(
        """
        0 1 * * * first
        PATH=/usr/local/bin:/usr/bin:/bin
        LANG = "C.UTF-8"
        0 2 * * * second
        PATH=/opt/bin
        EMPTY=
        0 3 * * * third
        """
    )
    assert [j.env for j in jobs] == [
        {},
        {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
        {"PATH": "/opt/bin", "LANG": "C.UTF-8", "EMPTY": ""},
    ]


def test_an_env_name_crontrio_cannot_pass_is_an_error_on_its_line() -> None:
    assert errors_of("my-var=1\n0 1 * * * true\n") == ["line 1: env: 'my-var' is not a valid environment variable name"]


def test_variables_cron_keeps_for_itself_are_dropped_with_a_warning() -> None:
    result = convert("MAILFROM=cron@x\nRANDOM_DELAY=10\nLOGNAME=root\nUSER=root\n0 1 * * * true\n", OPTS)
    (job,) = [j.job for j in result.jobs]
    assert job.env == {}
    assert sorted(w.line for w in result.warnings if w.line) == [1, 2, 3, 4]


def test_home_is_the_working_directory_as_cron_starts_commands_there() -> None:
    jobs = jobs_of("0 1 * * * a\nHOME=/srv/app\n0 2 * * * b\n", dataclasses.replace(OPTS, workdir="/tmp"))
    assert [(j.workdir, j.env.get("HOME")) for j in jobs] == [("/tmp", None), ("/srv/app", "/srv/app")]


# ------------------------------------------------------------ SHELL


def test_shell_runs_the_command_and_is_in_its_environment() -> None:
    jobs = jobs_of(
        """
        0 1 * * * echo default
        SHELL=/bin/bash
        0 2 * * * echo "$BASH_VERSION" | grep -q . && echo 'under bash'
        """
    )
    assert jobs[0].command == "echo default"  # the executor's /bin/sh is cron's default
    assert jobs[1].env["SHELL"] == "/bin/bash"
    result = run_sh(jobs[1].command)
    assert result.returncode == 0, result
    assert result.stdout == b"under bash\n"


def test_shell_keeps_the_commands_exit_status() -> None:
    (job,) = jobs_of("SHELL=/bin/bash\n0 1 * * * exit 7\n")
    assert run_sh(job.command).returncode == 7


# ------------------------------------------------------------ MAILTO and CRON_TZ


def test_mailto_becomes_failure_alerts_by_mail_and_empty_means_none() -> None:
    jobs = jobs_of(
        """
        0 1 * * * no-mailto
        MAILTO=ops@example.com
        0 2 * * * one
        MAILTO="ops@example.com, dev@example.com"
        0 3 * * * two
        MAILTO=""
        0 4 * * * none
        """
    )
    assert [(j.notify_policy, j.notify_channels, j.notify_emails) for j in jobs] == [
        (NOTIFY_NEVER, (), ()),
        (NOTIFY_ON_FAILURE, ("email",), ("ops@example.com",)),
        (NOTIFY_ON_FAILURE, ("email",), ("ops@example.com", "dev@example.com")),
        (NOTIFY_NEVER, (), ()),
    ]
    assert all("MAILTO" not in j.env for j in jobs)


def test_a_crontab_without_mailto_gets_a_note() -> None:
    result = convert("0 1 * * * true\n", OPTS)
    assert any(w.line == 0 and "MAILTO" in w.message for w in result.warnings)


def test_cron_tz_is_the_zone_of_the_entries_after_it() -> None:
    jobs = jobs_of(
        """
        0 1 * * * a
        CRON_TZ=Europe/Berlin
        30 2 * * * b
        CRON_TZ = "America/New_York"
        30 2 * * * c
        CRON_TZ=
        0 3 * * * d
        """,
        dataclasses.replace(OPTS, timezone="Asia/Tokyo"),
    )
    assert [j.timezone for j in jobs] == ["Asia/Tokyo", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]
    assert all("CRON_TZ" not in j.env for j in jobs)


def test_an_unknown_cron_tz_is_an_error_on_its_line() -> None:
    errors = errors_of("CRON_TZ=Mars/Olympus\n0 1 * * * true\n")
    assert len(errors) == 1 and errors[0].startswith("line 1: CRON_TZ:") and "Mars/Olympus" in errors[0]


# ------------------------------------------------------------ % and stdin


@pytest.mark.parametrize(
    ("raw", "command", "stdin"),
    [
        ("echo hi", "echo hi", ""),
        ("cat%line one%line two", "cat", "line one\nline two\n"),
        ("cat%a%", "cat", "a\n"),  # no second newline when it ends with one
        ("cat%a%%", "cat", "a\n\n"),
        ("cat%", "cat", ""),  # nothing written: the command sees end of input
        (r"date +\%Y-\%m-\%d", "date +%Y-%m-%d", ""),  # \% is a literal %
        (r"printf '\%s\n' x%in\%put", r"printf '%s\n' x", "in%put\n"),
        (r"echo a\b", r"echo a\b", ""),  # other backslashes stay
        (r"echo \\%rest", "echo \\\\", "rest\n"),  # \\ does not escape the %
        (r"cat%a\\b", "cat", "a\\\\b\n"),
        (r"cat%tail\\", "cat", "tail\\\\\n"),
    ],
)
def test_first_unescaped_percent_ends_the_command(raw: str, command: str, stdin: str) -> None:
    assert split_command(raw) == (command, stdin)


def test_percent_input_really_arrives_on_stdin() -> None:
    (job,) = jobs_of(r"0 1 * * * cat; echo '[end]'%Dear $USER,%`id` and 'quotes' \% done%%bye" + "\n")
    result = run_sh(job.command)
    assert result.returncode == 0, result
    assert result.stdout == b"Dear $USER,\n`id` and 'quotes' % done\n\nbye\n[end]\n"


def test_stdin_reaches_the_whole_command_line_not_only_its_last_part() -> None:
    (job,) = jobs_of('0 1 * * * read a; read b; echo "$b $a"%first%second\n')
    assert run_sh(job.command).stdout == b"second first\n"


def test_stdin_with_shell_runs_under_that_shell() -> None:
    (job,) = jobs_of('SHELL=/bin/bash\n0 1 * * * read x; echo "$x ${BASH_VERSION:+bash}"%hello\n')
    assert run_sh(job.command).stdout == b"hello bash\n"


def test_here_document_delimiter_is_never_a_line_of_the_input() -> None:
    body = "x\n"
    taken = heredoc_delimiter(body)
    tricky = f"before\n{taken}\n{taken}_1\nafter\n"
    delimiter = heredoc_delimiter(tricky)
    assert delimiter not in tricky.split("\n")
    command = shell_command("cat", tricky)
    assert run_sh(command).stdout == tricky.encode()


def test_command_with_quotes_and_expansions_is_passed_whole() -> None:
    command = shell_command("""echo "$0" 'single '"'"'quote' $(echo sub)""", "", "/bin/bash")
    assert run_sh(command).stdout == b"/bin/bash single 'quote sub\n"


# ------------------------------------------------------------ macros, names, Sunday


@pytest.mark.parametrize(
    ("macro", "spec"),
    [
        ("@yearly", "@yearly"),
        ("@annually", "@yearly"),
        ("@monthly", "@monthly"),
        ("@weekly", "@weekly"),
        ("@daily", "@daily"),
        ("@midnight", "@midnight"),
        ("@hourly", "@hourly"),
    ],
)
def test_every_macro(macro: str, spec: str) -> None:
    (job,) = jobs_of(f"{macro} /usr/bin/task\n")
    assert (job.spec, job.command, job.enabled) == (spec, "/usr/bin/task", True)


def test_reboot_is_imported_paused_with_a_warning() -> None:
    result = convert("@reboot /usr/local/bin/start-agent\n", OPTS)
    (item,) = result.jobs
    assert not item.job.enabled
    assert item.job.command == "/usr/local/bin/start-agent"
    assert any("@reboot" in w for w in item.warnings)
    assert any(w.line == 1 and "@reboot" in w.message for w in result.warnings)


def _weekdays(spec: str) -> set[int]:
    start = int(dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp() * 1000)
    return {dt.datetime.fromtimestamp(ms / 1000, dt.UTC).weekday() for ms in CronSchedule.parse(spec).next_n(start, 30)}


def test_names_and_both_sundays() -> None:
    jobs = jobs_of(
        """
        0 9 * * 0 zero
        0 9 * * 7 seven
        0 9 * * Sun name
        0 9 * JAN,jul mon-FRI names
        0 9 * * 5-7 range-to-seven
        """
    )
    sunday = 6  # datetime.weekday()
    assert _weekdays(jobs[0].spec) == _weekdays(jobs[1].spec) == _weekdays(jobs[2].spec) == {sunday}
    assert _weekdays(jobs[3].spec) == {0, 1, 2, 3, 4}
    assert _weekdays(jobs[4].spec) == {4, 5, 6}


# ------------------------------------------------------------ system format, users, targets


def test_system_format_has_a_user_column() -> None:
    jobs = jobs_of(
        """
        SHELL=/bin/sh
        PATH=/usr/sbin:/usr/bin
        17 * * * * root cd / && run-parts --report /etc/cron.hourly
        @daily   www-data   /usr/bin/php /srv/app/artisan schedule:run
        """,
        system=True,
    )
    assert [(j.run_as_user, j.command) for j in jobs] == [
        ("root", "cd / && run-parts --report /etc/cron.hourly"),
        ("www-data", "/usr/bin/php /srv/app/artisan schedule:run"),
    ]


def test_system_format_without_a_user_is_an_error() -> None:
    assert errors_of("0 1 * * * true\n", system=True) == [
        "line 1: expected a user name and a command after the time fields (system crontab format)"
    ]


def test_a_bad_user_name_names_the_field() -> None:
    (error,) = errors_of("0 1 * * * Bad!User true\n", system=True)
    assert error.startswith("line 1: user:")


def test_options_set_user_target_and_paused() -> None:
    options = dataclasses.replace(OPTS, user="alice", target="group:web", paused=True)
    (job,) = jobs_of("0 1 * * * true\n", options)
    assert (job.run_as_user, job.target, job.enabled) == ("alice", "group:web", False)


# ------------------------------------------------------------ names


def test_names_are_stable_per_line_and_independent_of_position() -> None:
    a = [j.name for j in jobs_of("0 1 * * * a\n0 2 * * * b\n")]
    b = [j.name for j in jobs_of("# new comment\nPATH=/bin\n0 2 * * * b\n\n0 1 * * * a\n")]
    assert a == list(reversed(b))
    assert all(n.startswith("host1-") and len(n) == len("host1-") + 8 for n in a)
    assert len(set(a)) == 2


def test_a_changed_line_gets_a_new_name_and_repeated_lines_get_one_each() -> None:
    names = job_names("s", ["0 1 * * * a", "0 1 * * * a", "0 1 * * * b"])
    assert len(set(names)) == 3
    assert job_names("s", ["0 1 * * * a"]) == names[:1]


@pytest.mark.parametrize(
    ("path", "stem"),
    [
        ("/etc/crontab", "crontab"),
        ("/etc/cron.d/php8.2", "php8.2"),
        ("backups.cron", "backups"),
        ("/tmp/my crontab!", "my-crontab"),
        ("...", "crontab"),
    ],
)
def test_stem_of_a_file_name(path: str, stem: str) -> None:
    assert stem_of(path) == stem


def test_same_job_compares_what_the_import_decides_only() -> None:
    (job,) = jobs_of("MAILTO=ops@example.com\n0 1 * * * true\n")
    tuned = dataclasses.replace(job, id=42, created_ms=1, updated_ms=2, retries=3, timeout_seconds=60, enabled=False)
    assert same_job(tuned, job)
    for change in ({"command": "false"}, {"spec": "0 2 * * *"}, {"env": {"A": "1"}}, {"notify_emails": ()}):
        assert not same_job(dataclasses.replace(tuned, **change), job), change
    updated = merged(dataclasses.replace(tuned, command="false"), job)
    assert (updated.id, updated.command, updated.retries, updated.enabled) == (42, "true", 3, False)


def test_parse_keeps_the_settings_in_force_at_each_entry() -> None:
    parsed = parse_crontab("SHELL=/bin/bash\nMAILTO=\nCRON_TZ=UTC\n0 1 * * * x%y\n")
    (entry,) = parsed.entries
    assert (entry.line, entry.shell, entry.mailto, entry.cron_tz, entry.command, entry.stdin) == (
        4,
        "/bin/bash",
        (),
        "UTC",
        "x",
        "y\n",
    )
