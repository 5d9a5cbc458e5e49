"""The pure core: functions from data to data, no I/O (an import-linter contract keeps it so).

policy + catalog + host -> desired; desired + observed -> plan; -> report; -> text and JSON;
-> journal records; and the probe programs' bytes.
"""
