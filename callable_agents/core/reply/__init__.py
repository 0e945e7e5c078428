"""Reply shaping for a channel: formatting dialects, splitting, citations."""
