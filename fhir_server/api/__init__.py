"""Thin routers: parse HTTP, call a service function, build the response."""
