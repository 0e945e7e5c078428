"""The widget and public page channels: one web chat API, two surfaces.

- :mod:`.widget`  the embeddable script and its channel type
- :mod:`.page`    the shareable public page ``/chat/{slug}``
- :mod:`.api`     sessions, messages and live events both use
- :mod:`.config`, :mod:`.tokens`, :mod:`.limits`  their settings, visitor tokens, rate limits
- :mod:`.preview`  how a widget or page looks with a configuration (the dashboard's live preview)
"""
