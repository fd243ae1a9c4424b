"""Where the repository and the shared reference data are (never absolute paths)."""
import os

EXPORT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(EXPORT_DIR))


def shared_dir() -> str:
    return os.environ.get("OMNITAG_SHARED_DIR") or os.path.join(REPO_ROOT, "..", "shared")


def shared(*parts) -> str:
    return os.path.normpath(os.path.join(shared_dir(), *parts))
