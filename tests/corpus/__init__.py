"""The real-world corpus (issue 12): open-source applications' models, installed from PyPI at
pinned versions into a test-only venv (``install.py``), healed and compared with ``create_all``."""
