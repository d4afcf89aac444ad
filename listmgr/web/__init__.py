"""Web entry points: public pages, admin, JSON API, hooks."""
