"""Optional Redis-backed caches: current-version read cache, rate limits, JWKS.

Everything here degrades to "uncached" (or to an in-process fallback) when Redis is
absent or unreachable; nothing in this package turns a Redis failure into an error.
"""
