"""CSV cells that spreadsheets will not run as formulas (CSV injection)."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    """The text of a value for a CSV cell; text a spreadsheet would take for a formula gets a leading quote."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


class Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a streaming response."""

    def write(self, value):
        return value


def csv_download(lines, filename):
    """A streamed CSV download of lines written by a csv.writer over Echo, named `filename`-<today>.csv."""
    from django.http import StreamingHttpResponse
    from django.utils import timezone

    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}-{timezone.localdate():%Y-%m-%d}.csv"'
    return response
