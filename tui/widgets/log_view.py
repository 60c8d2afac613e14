"""A log panel over a file on disk: only the visible lines are read, decoded and styled.

The file is the truth (tui.run_watch.LogIndex reads any range on demand), so memory does not grow
with the log. Follows the end while the view is at the bottom; scrolling up stops following and
End (or scrolling back down) resumes it. A filter shows only matching lines (the watcher thread
keeps the list of matching line numbers).
"""

from __future__ import annotations

import re
from collections import OrderedDict

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..run_watch import LineFilter, LogIndex

MAX_CACHED = 4000  # styled lines kept: a few screens
MAX_WIDTH = 1000  # horizontal scroll range cap (cells)
ERROR_WORDS = re.compile(r"error|traceback|exception|fatal|killed|out of memory", re.IGNORECASE)
WARNING_WORDS = re.compile(r"warn", re.IGNORECASE)
ANSI_ESCAPE = "\x1b["


def displayed(raw: str) -> str:
    """What a terminal would show for `raw`: text after the last carriage return (progress bars), tabs expanded."""
    if "\r" in raw:
        parts = [p for p in raw.split("\r") if p]
        raw = parts[-1] if parts else ""
    return raw.expandtabs(8)


class LogView(ScrollView, can_focus=True):
    HELP = """
## Log
Follows the end of output.log. Scroll up to pause following; `End` resumes.
`/` filter, `w` only warnings and errors, `Esc` clears the filter.
"""
    BINDINGS = [
        Binding("end", "follow", "Follow", show=False),
        Binding("home", "top", "Top", show=False),
        Binding("up", "scroll_up", "Up", show=False),
        Binding("down", "scroll_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
    ]

    following: reactive[bool] = reactive(True)

    class FollowChanged(Message):
        def __init__(self, following: bool) -> None:
            super().__init__()
            self.following = following

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.index: LogIndex | None = None
        self.filter: LineFilter | None = None
        self.total = 0  # rows in view: all lines, or the matching ones
        self._texts: OrderedDict[int, Text] = OrderedDict()
        self._widest = 0
        self._highlight: re.Pattern[str] | None = None

    # --- feeding -----------------------------------------------------------------------------------------
    def show(self, index: LogIndex, filter: LineFilter | None = None, shift: int = 0) -> None:
        """Point at `index` (and `filter`), e.g. after the log was replaced or the filter changed.
        `shift`: the new index has this many lines before the old one's first (tail index replaced
        by the full one): a view scrolled up stays on the same lines."""
        changed = index is not self.index or filter is not self.filter
        self.index, self.filter = index, filter
        if changed:
            self._texts.clear()
            self._highlight = re.compile(filter.pattern, re.IGNORECASE) if filter is not None else None
        following = self.following
        self.grew()
        if changed and following:
            self.scroll_end(animate=False, immediate=True, force=True)
        elif changed and shift and filter is None:
            self.scroll_to(y=self.scroll_offset.y + shift, animate=False, immediate=True, force=True)
            self.following = False
            self.refresh()

    def grew(self) -> None:
        """More lines (or matches) arrived: extend the scroll range; follow the end when following."""
        if self.index is None:
            return
        total = len(self.filter.matches) if self.filter is not None else self.index.lines
        if total == self.total and self.virtual_size.height == total:
            return
        before, self.total = self.total, total
        self._set_virtual_size(Size(max(self._widest, 1), total))
        if self.following:
            self._stick()
            self.call_after_refresh(self._stick)  # again once the layout knows the new size
            self.refresh()
        elif total < before or self.scroll_offset.y + self.scrollable_content_region.height > before:
            self.refresh()  # rows on screen changed; a paused view over old lines has nothing to redraw

    def _set_virtual_size(self, size: Size) -> None:
        """The scroll range. Growing taller with the vertical scrollbar already shown changes only
        the scrollbar: done without the layout pass (of the whole screen) and the repaint of every
        row that assigning `virtual_size` costs, since this happens for every batch of lines."""
        old = self.virtual_size
        scroll_update = getattr(self, "_scroll_update", None)  # Textual's own resize of the scrollbars
        if scroll_update is not None and size.width == old.width and size.height >= old.height \
                and self.show_vertical_scrollbar:
            self.set_reactive(LogView.virtual_size, size)
            scroll_update(size)
        else:
            self.virtual_size = size

    def _stick(self) -> None:
        if self.following and self.scroll_y < self.max_scroll_y:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True, force=True)

    def on_resize(self) -> None:
        self._stick()

    def line_number(self, row: int) -> int | None:
        """The log line shown on `row` of the view."""
        if self.index is None or not 0 <= row < self.total:
            return None
        if self.filter is not None:
            return self.filter.matches[row] if row < len(self.filter.matches) else None
        return row

    def visible_text(self) -> list[str]:
        """The plain text of the rows on screen now (tests, benchmarks)."""
        top = self.scroll_offset.y
        out = []
        for row in range(top, min(top + self.scrollable_content_region.height, self.total)):
            number = self.line_number(row)
            if number is not None:
                out.append(self._text(number).plain)
        return out

    # --- following ---------------------------------------------------------------------------------------
    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        at_bottom = round(new) >= self.max_scroll_y
        if at_bottom != self.following:
            self.following = at_bottom

    def watch_following(self, following: bool) -> None:
        self.post_message(self.FollowChanged(following))

    def action_follow(self) -> None:
        self.following = True
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def action_top(self) -> None:
        self.scroll_home(animate=False, immediate=True)

    # Not animated: while lines stream in, an animated page-up races the follow-the-end scroll of the
    # next batch (which could cancel it and leave the view following); a log pager jumps anyway.
    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)

    # --- rendering ---------------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        number = self.line_number(scroll_y + y)
        if number is None:
            return Strip.blank(width, self.rich_style)
        if number not in self._texts:
            self._prefetch(scroll_y)
        text = self._text(number)
        segments = list(text.render(self.app.console, end=""))
        strip = Strip(segments, text.cell_len).apply_style(self.rich_style)
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def _prefetch(self, top: int) -> None:
        """Read every row on screen in one go (a couple of block reads) rather than line by line."""
        assert self.index is not None
        height = self.scrollable_content_region.height
        if self.filter is None:
            first = top
            for offset, raw in enumerate(self.index.read(first, height)):
                self._store(first + offset, raw)
        else:
            for row in range(top, min(top + height, self.total)):
                number = self.line_number(row)
                if number is not None and number not in self._texts:
                    self._store(number, self.index.line(number))
        if self._widest > self.virtual_size.width:
            self.call_later(self._widen)

    def _widen(self) -> None:
        self.virtual_size = Size(self._widest, self.total)

    def _text(self, number: int) -> Text:
        text = self._texts.get(number)
        if text is None:
            assert self.index is not None
            text = self._store(number, self.index.line(number))
        return text

    def _store(self, number: int, raw: str) -> Text:
        text = self._style(displayed(raw))
        self._texts[number] = text
        if len(self._texts) > MAX_CACHED:
            self._texts.popitem(last=False)
        self._widest = max(self._widest, min(MAX_WIDTH, text.cell_len))
        return text

    def _style(self, line: str) -> Text:
        if ANSI_ESCAPE in line:
            text = Text.from_ansi(line, no_wrap=True, end="")  # the program's own colours
        else:
            text = Text(line, no_wrap=True, end="")
            # Uncoloured output (Python logging, tracebacks): tint problem lines so they stand out.
            if ERROR_WORDS.search(line):
                text.stylize(Style(color="red"))
            elif WARNING_WORDS.search(line):
                text.stylize(Style(color="yellow"))
        if self._highlight is not None:
            text.highlight_regex(self._highlight, Style(reverse=True, bold=True))
        return text

