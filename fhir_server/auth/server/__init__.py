"""The built-in OAuth 2 / SMART App Launch 2.0 authorization server.

authlib's framework-agnostic server classes do the protocol work (``oauth.py``,
``grants.py``, ``endpoints.py``); its hooks are synchronous, so every request is handled
in a worker thread on a small synchronous connection pool (``store.py``). The pages of
the authorization endpoint are plain HTML (``pages.py``, ``authorize.py``); the routes
and their resources are built in ``routes.py``.
"""
