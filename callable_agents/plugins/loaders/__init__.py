"""Knowledge loaders: pasted text, uploaded files, web pages (one plugin module each)."""
