"""Thin asyncio adapters: they feed the core and carry out what it returns."""
