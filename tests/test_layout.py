"""The shape issue 21 set: the CLI is a thin caller of the Python API (small modules, no engine imports), and no
product code runs the `pintext` command as a subprocess."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / "pintext" / "cli"
MAX_CLI_LINES = 400
# Engine glue the CLI must reach only through `pintext.api`: the engines, their clients and the engine registry.
ENGINE_MODULES = ("pintext.serving.opensearch", "pintext.serving.elasticsearch", "pintext.serving.local",
                  "pintext.serving.engines", "pintext.serving.opensearch_client", "pintext.serving.searcher",
                  "opensearchpy", "elasticsearch")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_cli_modules_are_small_and_import_no_engine():
    for path in sorted(CLI.glob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_CLI_LINES, f"{path.name}: {lines} lines (policy belongs in pintext.api)"
        engines = {name for name in imported_modules(path)
                   if any(name == module or name.startswith(module + ".") for module in ENGINE_MODULES)}
        assert not engines, f"{path.name} imports {sorted(engines)}: go through pintext.api"


def runs_pintext(call: ast.Call) -> bool:
    """A subprocess call whose command names `pintext` (the script, its module, or `from pintext.cli import main`)."""
    if not (isinstance(call.func, ast.Attribute) and call.func.attr in ("run", "Popen", "check_output", "call")):
        return False
    command = ast.unparse(call.args[0]) if call.args else ""
    return any(sign in command for sign in ("'pintext'", "bin/pintext", "pintext.cli", "PINTEXT_COMMAND", "PINTEXT"))


def test_no_product_code_runs_the_pintext_command():
    for folder in ("pintext", "ingest", "trainer"):
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            calls = [ast.unparse(node)[:100] for node in ast.walk(tree)
                     if isinstance(node, ast.Call) and runs_pintext(node)]
            assert not calls, f"{path}: runs the pintext command: {calls}"


def test_the_check_finds_a_pintext_subprocess():
    """The rule above can fail: it recognises the forms a command line of `pintext` takes."""
    for source in ("subprocess.run(['pintext', 'search'])", "subprocess.Popen([*PINTEXT_COMMAND, *args])",
                   "subprocess.run([sys.executable, '-c', 'from pintext.cli import main; main()'])"):
        (call,) = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call) and
                   isinstance(node.func, ast.Attribute)]
        assert runs_pintext(call), source
    assert not runs_pintext(ast.parse("subprocess.run(['java', '-version'])").body[0].value)  # type: ignore[attr-defined]
