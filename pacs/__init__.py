"""The bridge between a PACS (Orthanc) and the service: `xray-pacs`."""
