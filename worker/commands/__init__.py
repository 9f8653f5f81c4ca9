"""The CLI's commands, one module each; ``worker.cli`` parses arguments and dispatches."""
