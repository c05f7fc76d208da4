"""Plugin registry: built-ins register like third parties; broken plugins are skipped."""

import logging

import pytest

from coseg.plugins import PluginRegistry, registry


class _Reader:
    name = "fake"

    def detect(self, path):
        return False

    def read(self, path):
        raise AssertionError


def test_add_and_get():
    reg = PluginRegistry()
    reg.add("scene_reader", "fake", _Reader())
    assert reg.names("scene_reader") == ["fake"]
    assert isinstance(reg.get("scene_reader", "fake"), _Reader)
    with pytest.raises(KeyError, match="no scene_reader plugin named 'nope'"):
        reg.get("scene_reader", "nope")


def test_invalid_plugin_rejected():
    reg = PluginRegistry()
    with pytest.raises(ValueError, match="lacks read"):
        reg.add("scene_reader", "bad", object.__new__(type("X", (), {"detect": None})))
    with pytest.raises(ValueError, match="unknown plugin kind"):
        reg.add("teleporter", "x", object())


def test_broken_plugin_is_warned_and_skipped(caplog):
    reg = PluginRegistry()
    reg.add("scene_reader", "good", _Reader())

    def broken(r):
        r.add("scene_reader", "half", _Reader())
        raise RuntimeError("boom")

    with caplog.at_level(logging.WARNING):
        assert reg.load_from("thirdparty", broken) is False
    assert "boom" in caplog.text
    # The half-registered plugin is rolled back; earlier ones survive.
    assert reg.names("scene_reader") == ["good"]
    assert reg.failed == [("thirdparty", "RuntimeError: boom")]


def test_entry_point_plugins_load(monkeypatch):
    from importlib.metadata import EntryPoint

    import coseg.plugins as plugins_mod

    eps = [
        EntryPoint("broken", "no_such_module_xyz:register", "coseg.plugins"),
        EntryPoint("builtin", "plugins:register", "coseg.plugins"),
    ]
    monkeypatch.setattr(plugins_mod, "entry_points", lambda group: eps)
    reg = PluginRegistry()
    reg.load_entry_points()
    assert any(src == "broken" for src, _ in reg.failed)
    # Built-in plugins registered through the same path as third-party ones.
    assert reg.names("scene_reader")


def test_builtin_scene_readers_registered():
    reg = registry()
    assert "nerf" in reg.names("scene_reader")
