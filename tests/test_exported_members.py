"""The public API is exactly what ``hokuro.__all__`` lists, and every name resolves."""

import hokuro


def test_public_names_are_exactly_the_exported_ones():
    public = {name for name in vars(hokuro) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(hokuro, name)).__name__ == "module"}
    assert public - modules == set(hokuro.__all__) - {"__version__"}


def test_every_exported_name_resolves():
    for name in hokuro.__all__:
        assert getattr(hokuro, name) is not None
