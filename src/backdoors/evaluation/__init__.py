"""Populations of honest and backdoored models (recipes, jobs, cache), the one
scoring worker, detection tables and the audit of one model."""
