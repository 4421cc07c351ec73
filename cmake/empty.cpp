// Placeholder so that a library target has at least one source.
