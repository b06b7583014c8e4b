"""Pulling data from a source's FHIR REST API (search by resource type, paged, resumable)."""
