"""Repository-wide pytest hooks: the summary says how many golden checks are pending and deselected."""


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    deselected = terminalreporter.stats.get("deselected", [])
    pending = [item for item in deselected if item.get_closest_marker("unported") is not None]
    if pending:
        models: dict[str, int] = {}
        for item in pending:
            model = item.callspec.id.split("/", 1)[0] if hasattr(item, "callspec") else "?"
            models[model] = models.get(model, 0) + 1
        per_model = ", ".join(f"{m} {n}" for m, n in sorted(models.items()))
        terminalreporter.write_line(
            f"golden: {len(pending)} pending checks deselected ({per_model}); they fail when run: "
            f"python -m pytest -m golden, or python -m common.golden --list for the table (docs/parity.md)")
