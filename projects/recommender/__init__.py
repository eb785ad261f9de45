"""Recommender: content-based (and hybrid) movie recommendations over TMDB 5000, scored on MovieLens users."""
