"""Package data of the case studies (CSV extracts, ONNX models, PROVENANCE.md)."""
