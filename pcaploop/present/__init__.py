"""Present stage: views of an analysis for people and other tools.

Terminal tables, plots, the incident report, the evidence extract (pcapng
and display filters) and table exports.  Nothing here decides or counts.
"""

from __future__ import annotations
