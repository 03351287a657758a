"""A thin Singer target writing XML files, built on the Meltano Singer SDK and lxml.

No Singer target for XML is maintained on the package index. This one writes one
``.xml`` file per stream per run, record by record (an SDK ``RecordSink``: memory stays
flat), with an XSD generated from the stream's Singer schema beside it, so that XML-only
tools (older BI and spreadsheet imports, XSLT pipelines) get typed, validatable data.
"""

from target_xml.target import TargetXML

__all__ = ["TargetXML"]
