"""The training coordinator: state machine (state.py, no I/O), aiohttp application (app.py),
checkpoints (checkpoint.py), the dashboard page (dashboard.html)."""
