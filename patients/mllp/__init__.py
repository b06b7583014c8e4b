"""The MLLP listener: HL7 v2 messages over TCP, landed before parsing and acknowledged after processing."""
