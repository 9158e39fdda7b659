"""CDS Hooks 2.0 `patient-view` service: models, prefetch templates, FHIR reads, cards."""
