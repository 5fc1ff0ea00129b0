"""Exporters that show costspan's attributes: a console cost tree."""

from costspan.exporters.console import ConsoleCostTreeExporter, format_tree

__all__ = ["ConsoleCostTreeExporter", "format_tree"]
