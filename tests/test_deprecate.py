"""The forwarding of moved names: same object, one DeprecationWarning naming the new path."""

import types
import warnings

import pytest

from brainlid._deprecate import forward


def test_forward_warns_and_returns_the_moved_object():
    mod = types.ModuleType("old.place")
    mod.__getattr__ = forward("old.place", {"sqrt": "math", "root": "math:sqrt"})
    import math

    with pytest.warns(DeprecationWarning, match=r"old\.place\.sqrt is deprecated; import sqrt from math"):
        assert mod.__getattr__("sqrt") is math.sqrt
    with pytest.warns(DeprecationWarning, match="import sqrt from math"):
        assert mod.__getattr__("root") is math.sqrt
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            mod.__getattr__("nope")
