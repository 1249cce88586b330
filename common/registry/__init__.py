"""Executor discovery: which executors exist and may take work."""
