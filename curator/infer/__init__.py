"""Provenance inference: signals in files (C2PA, IPTC, generator metadata), near-duplicate propagation, a time prior, detectors; relabelling with label events; contamination."""
