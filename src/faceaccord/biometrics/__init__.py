"""The biometric pipeline: intake, detection, landmarks, alignment, embedding, quality."""
