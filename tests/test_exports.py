"""The public surface is exactly what DESIGN.md §3 documents (trio's test_exports)."""
from __future__ import annotations

import dolab

DOCUMENTED = {
    "DurableObject", "WorkerEntrypoint", "Request", "Response", "WebSocketPair",
    "WebSocketRequestResponsePair", "Lab", "fetch", "Date", "scheduler",
}
ERRORS = {"RangeError", "DataCloneError", "DurableObjectError", "DurableObjectReset",
          "DurableObjectOverloaded", "DOMException", "DurableObjectAbort"}
EXTRAS = {"Headers", "load_ipython_extension"}


def test_all_is_the_documented_api() -> None:
    assert set(dolab.__all__) == DOCUMENTED | ERRORS | EXTRAS


def test_every_exported_name_exists() -> None:
    for name in dolab.__all__:
        assert getattr(dolab, name) is not None


def test_no_module_leaks_into_the_star_namespace() -> None:
    namespace: dict[str, object] = {}
    exec("from dolab import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(dolab.__all__)


def test_errors_map_to_python_classes() -> None:
    assert issubclass(dolab.RangeError, ValueError)
    assert issubclass(dolab.DataCloneError, TypeError)
    assert issubclass(dolab.DurableObjectReset, dolab.DurableObjectError)
    assert issubclass(dolab.DurableObjectError, RuntimeError)
    assert not issubclass(dolab.DurableObjectAbort, Exception)
