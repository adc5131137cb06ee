"""Reading CSV files as people actually send them: any of UTF-8 (with or without BOM) and Windows-1252, comma,
semicolon or tab, quoted fields, a header row; and a clear word when the file is not CSV at all."""

import csv
import io
from dataclasses import dataclass

from django.utils.translation import gettext as _

SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
# Magic numbers of files that are often renamed .csv.
NOT_CSV = [
    (b"PK\x03\x04", "xlsx"),
    (b"\xd0\xcf\x11\xe0", "xls"),
    (b"%PDF", "pdf"),
    (b"\x1f\x8b", "gzip"),
    (b"{\\rtf", "rtf"),
]


class NotReadable(ValueError):
    """The file cannot be read as CSV; the message says why in words a user understands."""


@dataclass
class CsvFile:
    """A decoded CSV file: its encoding, delimiter and header (blank headers named by position)."""

    text: str
    encoding: str
    delimiter: str
    header: list[str]

    def rows(self, start=0):
        """(row number, cells) for every data row from the start-th on; row numbers count the header as row 1."""
        reader = csv.reader(io.StringIO(self.text, newline=""), delimiter=self.delimiter)
        next(reader, None)
        for index, cells in enumerate(reader):
            if index < start:
                continue
            if not any(cell.strip() for cell in cells):
                continue  # blank lines carry nothing
            yield index + 2, cells

    def count_rows(self):
        return sum(1 for _row in self.rows())


def _kind_of_binary(head: bytes):
    for magic, kind in NOT_CSV:
        if head.startswith(magic):
            return kind
    sample = head[:SNIFF_BYTES]
    if b"\x00" in sample:
        return "binary"
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 13))
    if sample and controls / len(sample) > 0.01:
        return "binary"
    return None


def decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding it was read with: UTF-8 (a BOM is dropped), else Windows-1252."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"  # cp1252 leaves five bytes undefined; latin-1 reads them all


def _delimiter(text: str) -> str:
    sample = text[:SNIFF_BYTES]
    first_line = sample.split("\n", 1)[0]
    try:
        found = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        found = None
    # The header decides ties: a German export has more semicolons than commas in its header line.
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    if found and counts.get(found, 0) >= counts[best]:
        return found
    return best if counts[best] else ","


def read_csv(data: bytes) -> CsvFile:
    """Decode and check an uploaded file; raises NotReadable with a message for the user."""
    binary = _kind_of_binary(data[:SNIFF_BYTES])
    if binary in ("xlsx", "xls"):
        raise NotReadable(
            _(
                "This is an Excel workbook, not a CSV file (even if its name ends in .csv). In Excel, choose "
                "File › Save as › “CSV UTF-8 (comma delimited)” and upload that file."
            )
        )
    if binary:
        raise NotReadable(
            _("This file is not text: it looks like %(kind)s data. Please upload a CSV file.")
            % {"kind": binary.upper() if binary != "binary" else _("binary")}
        )
    text, encoding = decode(data)
    if not text.strip():
        raise NotReadable(_("The file is empty."))
    delimiter = _delimiter(text)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = next(reader)
        has_data = any(any(cell.strip() for cell in cells) for cells in reader)
    except csv.Error as exc:
        raise NotReadable(_("The file could not be read as CSV: %(error)s") % {"error": exc}) from None
    header = [cell.strip() for cell in header]
    if not any(header):
        raise NotReadable(_("The first row should name the columns, but it is empty."))
    if not has_data:
        raise NotReadable(_("The file has a header row but no data rows."))
    seen = set()
    for position, name in enumerate(header):
        if not name:
            name = _("(column %(number)d)") % {"number": position + 1}
        while name in seen:
            name += "′"
        header[position] = name
        seen.add(name)
    return CsvFile(text=text, encoding=encoding, delimiter=delimiter, header=header)
