"""Recommendations: popularity, item/user kNN, matrix factorisation, rating models, evaluation, serving."""
