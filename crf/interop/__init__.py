"""Exchange with other systems: CDISC ODM 1.3.2 and REDCap data dictionaries (docs/interop.md).

Exporters read the study model (crf.model), never the raw JSON; importers write a study folder that
`build_crf.py check` accepts, through `studywriter`, which writes into a temporary folder and moves it
into place only when every file is written.
"""
