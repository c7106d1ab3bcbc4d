"""Read models of a run: pure folds of its events and state into status, timeline, history,
facts, exports and the auditor's verification, for the CLI and the web to show."""
