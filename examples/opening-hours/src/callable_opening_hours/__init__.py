"""callable-opening-hours: an example third-party plugin for Callable Agents.

It adds the ``opening_hours`` tool type (is the business open now, until when, and when does
it next open) and an event hook that logs handoffs. The entry point in ``pyproject.toml``
names :mod:`callable_opening_hours.plugin`; the other modules are the parts it uses.
"""

__version__ = "0.1.0"
