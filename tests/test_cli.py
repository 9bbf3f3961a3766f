"""The `dolab` command: lab, serve, export, check, explain (argparse subcommands, --help)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import aiohttp
import pytest
import websockets

from dolab import cli
from dolab.export import WRANGLER_VERSION, local_wrangler

ROOT = Path(__file__).resolve().parent.parent
CHAT = ROOT / "tests" / "fixtures" / "chat.py"


def dolab(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


# ---- help ----------------------------------------------------------------------------------------


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = dolab("--help", capsys=capsys)
    assert status == 0
    assert out.startswith("usage: dolab [-h] [--version] COMMAND ...")
    for command in ("lab", "serve", "export", "check", "explain"):
        assert re.search(rf"^    {command} ", out, re.MULTILINE), command


@pytest.mark.parametrize("command", ["serve", "export", "check", "explain"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = dolab(command, "--help", capsys=capsys)
    assert status == 0 and out.startswith(f"usage: dolab {command}")


def test_serve_help_says_other_hosts_are_explicit(capsys: pytest.CaptureFixture[str]) -> None:
    out = " ".join(dolab("serve", "--help", capsys=capsys)[1].split())
    assert "--port PORT 0 picks a free port (default 8787)" in out
    assert "--host HOST address to listen on (default 127.0.0.1); any other address exposes " \
        "the lab to the network and prints a warning" in out


def test_a_missing_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = dolab(capsys=capsys)
    assert status == 2 and "the following arguments are required: COMMAND" in err


# ---- export --------------------------------------------------------------------------------------


def test_export_writes_the_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = dolab("export", str(CHAT), "--out", str(tmp_path / "out"), capsys=capsys)
    assert (status, err) == (0, "")
    assert out.splitlines() == [f"Exported 'chat' to {tmp_path / 'out'}:", "  src/entry.py",
                                "  wrangler.toml", "  pyproject.toml", "  README.md",
                                "  .gitignore"]
    config = tomllib.loads((tmp_path / "out" / "wrangler.toml").read_text())
    assert config["durable_objects"]["bindings"] == [{"name": "CHAT_ROOM",
                                                      "class_name": "ChatRoom"}]


def test_export_keeps_the_wrangler_toml_beside_the_module(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(CHAT, tmp_path / "chat.py")
    (tmp_path / "wrangler.toml").write_text('''\
name = "rooms"
main = "chat.py"
compatibility_date = "2026-03-01"

[[durable_objects.bindings]]
name = "CHAT_ROOM"
class_name = "Room"

[[migrations]]
tag = "v1"
new_classes = ["Room"]

[[migrations]]
tag = "v2"
renamed_classes = [{ from = "Room", to = "ChatRoom" }]
''')
    status, _, err = dolab("export", str(tmp_path / "chat.py"), "--out", str(tmp_path / "out"),
                           capsys=capsys)
    assert status == 2 and "which are not exported in your entrypoint file: Room." in err
    toml = (tmp_path / "wrangler.toml").read_text().replace('class_name = "Room"',
                                                           'class_name = "ChatRoom"')
    (tmp_path / "wrangler.toml").write_text(toml)
    status, _, err = dolab("export", str(tmp_path / "chat.py"), "--out", str(tmp_path / "out"),
                           capsys=capsys)
    assert (status, err) == (0, "")
    config = tomllib.loads((tmp_path / "out" / "wrangler.toml").read_text())
    assert (config["name"], config["main"], config["compatibility_date"]) == \
        ("rooms", "src/entry.py", "2026-03-01")
    assert config["compatibility_flags"] == ["python_workers"]
    assert config["migrations"] == [
        {"tag": "v1", "new_classes": ["Room"]},
        {"tag": "v2", "renamed_classes": [{"from": "Room", "to": "ChatRoom"}]}]


def test_export_refuses_dolab_only_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = tmp_path / "app.py"
    module.write_text(CHAT.read_text() + "\nfrom dolab import Lab\n\nlab = Lab(path=None)\n")
    status, out, err = dolab("export", str(module), "--out", str(tmp_path / "out"),
                             capsys=capsys)
    assert (status, out) == (2, "")
    assert err.startswith("dolab export: Cannot export to Cloudflare")
    lines = len(CHAT.read_text().splitlines())
    assert f"app.py, line {lines + 4}: dolab.Lab (dolab's local runtime)" in err


def test_export_check_shows_wranglers_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    local = local_wrangler()
    if local is None:
        pytest.fail("wrangler is not installed in .cache/wrangler: run "
                    "`bash tools/install-wrangler.sh` (needs Node.js 20.3+ and npm).")
    monkeypatch.setenv("DOLAB_WRANGLER", str(local))
    status, out, _ = dolab("export", str(CHAT), "--out", str(tmp_path), "--check", capsys=capsys)
    assert status == 0, out
    assert f"wrangler {WRANGLER_VERSION} deploy --dry-run accepts the project." in out
    assert "env.CHAT_ROOM (ChatRoom)" in out


def test_a_module_that_does_not_load_is_exit_2(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.py").write_text("raise RuntimeError('nope')\n")
    status, _, err = dolab("export", str(tmp_path / "bad.py"), "--out", str(tmp_path),
                           capsys=capsys)
    assert (status, err.strip()) == (2, f"dolab export: {tmp_path / 'bad.py'} failed to load: "
                                        "RuntimeError: nope")
    status, _, err = dolab("serve", str(tmp_path / "missing.py"), capsys=capsys)
    assert (status, err.strip()) == (2, f"dolab serve: {tmp_path / 'missing.py'}: no such file")


def test_a_module_without_a_worker_is_exit_2(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "objects.py").write_text(
        "from dolab import DurableObject\n\nclass Counter(DurableObject):\n    pass\n")
    status, _, err = dolab("export", str(tmp_path / "objects.py"), "--out", str(tmp_path),
                           capsys=capsys)
    assert status == 2 and "defines no WorkerEntrypoint subclass" in err


# ---- serve ---------------------------------------------------------------------------------------


async def test_serve_runs_until_interrupted(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dolab.cli", "serve", str(CHAT), "--port", "0",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        match = re.fullmatch(r"Serving Chat \(env\.CHAT_ROOM \(ChatRoom\)\) on "
                             r"(http://127\.0\.0\.1:\d+/)  \(Ctrl-C stops\)\n", line)
        assert match, line
        url = match[1]
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200 and "<title>dolab chat</title>" in await response.text()
        ws = url.replace("http", "ws") + "room/lobby?name=cli"
        async with websockets.connect(ws) as client:
            await client.send("over the command line")
            assert await asyncio.wait_for(client.recv(), 10) == "cli: over the command line"
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert not (tmp_path / ".dolab").exists()  # in memory unless --db


# ---- lab, check, explain -------------------------------------------------------------------------


def test_lab_execs_jupyterlab_on_the_lessons(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(os, "execv", lambda path, argv: calls.append((path, argv)))
    assert cli.main(["lab", "--no-browser"]) == 0
    assert calls == [(sys.executable, [sys.executable, "-m", "jupyterlab", "notebooks",
                                       "--no-browser"])]


def test_check_and_explain_are_the_checkers(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = dolab("check", str(CHAT), "--format", "json", capsys=capsys)
    assert (status, json.loads(out)) == (0, [])
    status, out, _ = dolab("explain", "Durable Object is overloaded. Too many requests queued.",
                           capsys=capsys)
    assert status == 0 and "retry" in out.lower()
