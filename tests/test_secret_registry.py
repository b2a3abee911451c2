"""The run's secret registry (harvester/secrets.py) on its own: forms, masking, log records,
exception chains, checkpoint placeholders and tokens swapped in next links."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from harvester.errors import PageFetchError
from harvester.placeholders import UnknownPlaceholder
from harvester.secrets import RESUMED_TOKEN, MaskedError, Secrets

KEY = "k3y/with+SIGNS=&x"
TOKEN = "t0ken/one+A"
NEWER = "t0ken/two+B"


def test_every_url_form_of_a_secret_is_masked() -> None:
    secrets = Secrets([KEY])
    url = str(URL("https://api.test/items").with_query(api_key=KEY))
    for text in (KEY, quote(KEY, safe=""), quote_plus(KEY), url):
        assert KEY not in secrets.mask(text) and "***" in secrets.mask(text)
    assert secrets.mask_bytes(f"key {quote_plus(KEY)}".encode()) == b"key ***"
    assert secrets.mask_data({"error": f"for {KEY}", "n": [1, KEY]}) == {
        "error": "for ***",
        "n": [1, "***"],
    }


@given(st.text(min_size=4, max_size=40).filter(lambda s: s.strip() == s and s))
def test_a_secret_never_survives_in_a_url_yarl_builds(value: str) -> None:
    secrets = Secrets([value])
    url = str(URL("https://api.test/items").with_query(key=value, page=2))
    shown = secrets.mask(url)
    assert value not in shown and quote(value, safe="") not in shown


def test_tokens_and_credentials_are_learned_as_they_come() -> None:
    heard: list[str] = []
    secrets = Secrets(["configured-1"], on_add=heard.append)
    secrets.add(TOKEN, token=True)
    secrets.add("basic-credential")
    late: list[str] = []
    secrets.listen(late.append)
    assert heard == ["configured-1", TOKEN, "basic-credential"] == late
    assert secrets.tokens == (TOKEN,)
    assert secrets.mask(f"{TOKEN} basic-credential configured-1") == "*** *** ***"
    assert TOKEN not in repr(secrets)


def test_log_records_are_masked_while_a_run_lasts_and_only_then(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="harvester")
    log = logging.getLogger("harvester")
    secrets = Secrets([KEY])
    with secrets.masking_logs(), secrets.masking_logs():  # reentrant: the inner one is a no-op
        log.info("sent %s", quote_plus(KEY))
        try:
            raise ValueError(f"key {KEY}")
        except ValueError:
            log.exception("failed")
    log.info("after %s", "the-run")
    first, second, after = caplog.records
    assert first.getMessage() == "sent ***"
    assert second.exc_info is None and second.exc_text is not None
    assert "ValueError: key ***" in second.exc_text and KEY not in caplog.text
    assert after.getMessage() == "after the-run"
    assert all(not lg.filters for lg in map(logging.getLogger, ("harvester", "asyncio")))


class _Transport(Exception):
    """Like aiohttp's errors: the request (its headers) among the attributes."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(f"failed at {url}")
        self.headers = headers


def test_an_exception_chain_is_masked_link_by_link() -> None:
    secrets = Secrets([KEY])
    secrets.add(TOKEN, token=True)
    try:
        try:
            raise _Transport(f"https://api.test/?k={quote(KEY)}", {"Authorization": TOKEN})
        except _Transport as exc:
            raise PageFetchError(
                f"failed ({exc})", page=1, url="https://api.test/", body=f"echo {TOKEN}"
            ) from exc
    except PageFetchError as caught:
        error, masked = caught, secrets.mask_exception(caught)
    assert masked is error and error.body == "echo ***"
    assert isinstance(error.__cause__, MaskedError)
    assert "_Transport: failed at https://api.test/?k=***" in str(error.__cause__)
    assert error.__cause__.__traceback__ is not None  # where it happened is kept
    shown = "".join(traceback.format_exception(error)) + repr(vars(error.__cause__))
    assert KEY not in shown and quote(KEY, safe="") not in shown and TOKEN not in shown


def test_every_member_of_an_exception_group_is_masked() -> None:
    secrets = Secrets([KEY])
    group = ExceptionGroup("workers", [_Transport(KEY, {}), ValueError("nothing secret")])
    masked = secrets.mask_exception(group)
    assert isinstance(masked, MaskedError)
    assert "workers" in str(masked) and "MaskedError: " in str(masked)
    assert "ValueError: nothing secret" in str(masked)
    assert KEY not in "".join(traceback.format_exception(masked))


def test_a_chain_through_a_group_and_back_ends() -> None:
    # As _run_all leaves it: the first failure re-raised, its context the group holding it.
    secrets = Secrets([KEY])
    failure = PageFetchError(f"failed for {KEY}", page=1, url="https://api.test/")
    other = _Transport(KEY, {})
    group = ExceptionGroup("workers", [failure, other])
    failure.__context__ = group
    assert secrets.mask_exception(failure) is failure
    assert isinstance(failure.__context__, MaskedError)
    shown = "".join(traceback.format_exception(failure))
    assert KEY not in shown and "failed for ***" in shown


def test_a_cancellation_stays_a_cancellation() -> None:
    secrets = Secrets([KEY])
    cancelled = asyncio.CancelledError()
    cancelled.__context__ = _Transport(KEY, {})
    assert secrets.mask_exception(cancelled) is cancelled
    assert isinstance(cancelled.__context__, MaskedError)
    harmless = ValueError("nothing secret")
    assert secrets.mask_exception(harmless) is harmless


def test_checkpoint_placeholders_put_back_config_values_and_stand_ins_for_tokens() -> None:
    secrets = Secrets({"source.params.api_key": KEY})
    secrets.add(TOKEN, token=True)
    link = str(URL("https://api.test/items").with_query(api_key=KEY, access_token=TOKEN))
    saved = secrets.with_placeholders(link)
    assert KEY not in saved and "{secret:source.params.api_key" in saved and "{token" in saved
    # The next run's config holds the key under the same key path, whatever came before it.
    later = Secrets({"auth.client_secret": "another-secret", "source.params.api_key": KEY})
    resumed = later.from_placeholders(saved)
    assert RESUMED_TOKEN[":query"] in resumed
    # The next run has another token: the link is sent with it, in the form the link used.
    later.add(NEWER, token=True)
    sent = later.current_token_in(resumed, NEWER)
    assert URL(sent).query == {"api_key": KEY, "access_token": NEWER}


def test_a_link_holding_an_earlier_token_is_sent_with_the_current_one() -> None:
    secrets = Secrets()
    secrets.add(TOKEN, token=True)
    secrets.add(NEWER, token=True)
    link = f"https://api.test/items?page=2&access_token={quote(TOKEN, safe='')}"
    assert secrets.current_token_in(link, NEWER) == link.replace(
        quote(TOKEN, safe=""), quote(NEWER, safe="")
    )
    assert secrets.current_token_in(link, TOKEN) == link


def test_a_plain_token_in_a_link_gives_way_to_the_next_token_percent_encoded() -> None:
    # "plain0token" reads the same in every encoding: the link does not say which its server
    # used, and the percent-encoded form is right in any query.
    secrets = Secrets()
    secrets.add("plain0token", token=True)
    secrets.add(NEWER, token=True)
    sent = secrets.current_token_in("https://api.test/items?access_token=plain0token", NEWER)
    assert URL(sent, encoded=True).query["access_token"] == NEWER


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.sampled_from([*"{}:#%+/=&a0", KEY, "{secret:#0}", "{secret:source.params.api_key}"])
    ).map("".join)
)
def test_saved_text_reads_back_exactly_as_the_server_sent_it(text: str) -> None:
    # Text that looks like a placeholder is the server's, not a secret: it reads back as sent.
    secrets = Secrets({"source.params.api_key": KEY, "auth.client_secret": "1000"})
    saved = secrets.with_placeholders(text)
    assert KEY not in saved
    assert secrets.from_placeholders(saved) == text


def test_a_placeholder_the_config_no_longer_names_is_refused() -> None:
    saved = Secrets({"source.params.api_key": KEY}).with_placeholders(f"/items?api_key={KEY}")
    with pytest.raises(UnknownPlaceholder) as refused:
        Secrets({"source.headers.X-Api-Key": KEY + "x"}).from_placeholders(saved)
    assert refused.value.name == "secret:source.params.api_key"


@pytest.mark.parametrize(
    "echo",
    [
        json.dumps(KEY)[1:-1],  # as most encoders write it
        json.dumps(KEY)[1:-1].replace("/", "\\/"),  # PHP's json_encode
        "".join(c if c.isalnum() else f"\\u{ord(c):04x}" for c in KEY),  # JSON_HEX_* flags
        json.dumps(KEY + "\u00e9")[1:-1],  # ensure_ascii: non-ASCII as \\u00e9
    ],
)
def test_a_json_escaped_echo_is_masked(echo: str) -> None:
    secrets = Secrets([KEY, KEY + "\u00e9"])
    assert secrets.mask(f'{{"error": "bad key {echo}!"}}') == '{"error": "bad key ***!"}'
