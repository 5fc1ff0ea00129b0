"""Stage 6: exporters that show costspan's attributes (the console cost tree), and the prices
backends need to show the same costs (`phoenix_prices`: `costspan push-prices`).

One job: present finished, priced spans. Imports: `attributes` and the stages below; never `setup`.
"""

from costspan.exporters.console import ConsoleCostTreeExporter, format_tree

__all__ = ["ConsoleCostTreeExporter", "format_tree"]
