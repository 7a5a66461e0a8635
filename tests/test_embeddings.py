import gzip
import hashlib
import http.server
import threading
import time
import zipfile
from functools import partial

import numpy as np
import pytest

from llmcls.config import TokenizerConfig
from llmcls.data.readers import read_examples
from llmcls.data.tokenize import Tokenizer
from llmcls.embeddings import (
    KNOWN_SHA256,
    PACKAGED_GLOVE,
    Coverage,
    DownloadLimits,
    Vectors,
    build_embedding_matrix,
    download,
    load_vectors,
    read_packaged_glove,
    read_text_vectors,
    vector_coverage,
    wanted_words,
)
from llmcls.errors import EmbeddingsError
from support.paths import FIXTURES, SHIPPED_GLOVE

GLOVE_LINES = "the 0.1 0.2 0.3\nfilm -1 0.5 2.5\ngood 0 0 1\n"


def write_glove(path, text=GLOVE_LINES):
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["g.txt", "g.txt.gz"])
def test_glove_text_files(tmp_path, name):
    v = read_text_vectors(write_glove(tmp_path / name))
    assert v.words == ["the", "film", "good"] and v.dim == 3
    np.testing.assert_allclose(v.matrix[1], [-1, 0.5, 2.5])
    assert v.matrix.dtype == np.float32


def test_only_wanted_words_are_kept(tmp_path):
    v = read_text_vectors(write_glove(tmp_path / "g.txt"), wanted={"good", "absent"})
    assert v.words == ["good"] and v.matrix.shape == (1, 3)


def test_word2vec_header_and_words_with_spaces(tmp_path):
    path = tmp_path / "w.vec"
    path.write_text("2 3\nnew york 1 2 3\nfilm 4 5 6\n")
    v = read_text_vectors(path)
    assert v.words == ["new york", "film"]
    np.testing.assert_allclose(v.matrix, [[1, 2, 3], [4, 5, 6]])


def test_zip_with_several_dimensions_picks_by_dim(tmp_path):
    path = tmp_path / "glove.6B.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("glove.6B.3d.txt", GLOVE_LINES)
        z.writestr("glove.6B.2d.txt", "the 1 2\n")
    assert read_text_vectors(path, dim=2).words == ["the"]
    assert read_text_vectors(path, dim=3).dim == 3
    with pytest.raises(EmbeddingsError, match="set embeddings.dim"):
        read_text_vectors(path)


def test_inconsistent_rows_and_wrong_dim(tmp_path):
    bad = write_glove(tmp_path / "bad.txt", "the 1 2 3\nfilm 1 2\n")
    with pytest.raises(EmbeddingsError, match="line 2: 2 values, expected 3"):
        read_text_vectors(bad)
    with pytest.raises(EmbeddingsError, match="dimension 3, but embeddings.dim is 50"):
        read_text_vectors(write_glove(tmp_path / "g.txt"), dim=50)
    with pytest.raises(EmbeddingsError, match="not found"):
        load_vectors(str(tmp_path / "missing.txt"))


def test_shipped_subset_is_real_glove():
    v = read_text_vectors(SHIPPED_GLOVE, wanted={"good", "bad", "great"})
    assert v.dim == 50 and sorted(v.words) == ["bad", "good", "great"]
    g = dict(zip(v.words, v.matrix))
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert cos(g["good"], g["great"]) > 0.7
    np.testing.assert_allclose(g["good"][:3], [-0.35586, 0.5213, -0.6107], atol=1e-5)


def test_packaged_glove_matches_shipped_subset():
    packaged = load_vectors(PACKAGED_GLOVE, wanted={"film", "the"})
    shipped = read_text_vectors(SHIPPED_GLOVE, wanted={"film", "the"})
    for word in ("film", "the"):
        np.testing.assert_allclose(
            packaged.matrix[packaged.words.index(word)], shipped.matrix[shipped.words.index(word)], atol=1e-5
        )


def test_embedding_matrix_rows():
    vectors = Vectors(["film", "good"], np.array([[1, 2], [3, 4]], dtype=np.float32))
    itos = ["<pad>", "<unk>", "good", "Film", "zzz"]
    matrix, found = build_embedding_matrix(itos, vectors, dim=2, oov_std=0.1, generator=np.random.default_rng(0))
    assert found == 2  # "Film" found lowercased
    assert matrix[0].tolist() == [0, 0]
    assert matrix[2].tolist() == [3, 4] and matrix[3].tolist() == [1, 2]
    assert 0 < np.abs(matrix[4]).max() < 1
    assert wanted_words(["Film"]) == {"Film", "film"}


class _Server:
    def __init__(self, directory):
        handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
        handler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_from_a_local_server_then_from_cache(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    write_glove(served / "glove.tiny.3d.txt.gz")
    server = _Server(served)
    progress = []
    try:
        url = f"{server.url}/glove.tiny.3d.txt.gz"
        v = load_vectors(url, cache_dir=tmp_path / "cache", on_progress=lambda d, t: progress.append((d, t)))
        assert v.words == ["the", "film", "good"]
        assert progress[-1][0] == progress[-1][1] == (served / "glove.tiny.3d.txt.gz").stat().st_size
        with pytest.raises(EmbeddingsError, match="download failed"):
            download(f"{server.url}/absent.txt", tmp_path / "cache")
    finally:
        server.close()
    # the server is gone: the second load must come from the cache
    assert load_vectors(url, cache_dir=tmp_path / "cache").words == ["the", "film", "good"]
    assert not list((tmp_path / "cache").glob("*.part"))


def test_extra_rows_come_in_file_order(tmp_path):
    path = write_glove(tmp_path / "g.txt")
    assert read_text_vectors(path, wanted={"good"}, extra=1).words == ["the", "good"]
    assert read_text_vectors(path, wanted={"good"}, extra=5).words == ["the", "film", "good"]


def test_packaged_glove_extra_rows_are_the_most_frequent_words():
    v = load_vectors(PACKAGED_GLOVE, wanted={"superb"}, extra=3)
    assert v.words == ["the", ",", ".", "superb"]
    assert load_vectors(PACKAGED_GLOVE, wanted={"the", "superb"}, extra=1).words == ["the", ",", "superb"]
    assert load_vectors(PACKAGED_GLOVE, wanted={"Superb", "qqqzzzx"}).words == []  # GloVe 6B is lowercase


def tokenized(texts, lower=True):
    return Tokenizer(TokenizerConfig(lower=lower, cache=False)).tokenize_many(texts)


def coverage_of(tokens, vector_words):
    return vector_coverage(tokens.table, np.bincount(tokens.ids, minlength=len(tokens.table)), vector_words)


def test_vector_coverage_counts_tokens_and_distinct_words():
    tokens = tokenized(["A gorgeous film.", "the film, the film, xqzv!"])
    # a gorgeous film . | the film , the film , xqzv !  -> 12 tokens, 8 distinct words
    coverage = coverage_of(tokens, {"a", "film", "the", ",", "."})
    assert coverage == Coverage(tokens=9 / 12, words=5 / 8)
    # cased tokens are found lowercased, as build_embedding_matrix looks them up
    assert coverage_of(tokenized(["The Film"], lower=False), {"the", "film"}) == Coverage(1.0, 1.0)
    assert coverage_of(tokenized([""]), {"the"}) == Coverage(0.0, 0.0)


def test_coverage_of_real_data_by_the_packaged_vectors_and_the_sst2_subset():
    glove = read_packaged_glove()
    assert len(glove.words) == 400_000 and glove.matrix.shape == (400_000, 50)
    packaged, subset = set(glove.words), set(read_text_vectors(SHIPPED_GLOVE).words)
    sst2 = tokenized(read_examples(FIXTURES / "sst2_train.csv").texts)
    # the subset holds every SST-2 word that GloVe has: on SST-2 the two cover alike
    assert coverage_of(sst2, subset) == coverage_of(sst2, packaged)
    trec = tokenized(read_examples(FIXTURES / "trec_train.csv").texts)
    assert coverage_of(trec, packaged).tokens > 0.99 and coverage_of(trec, packaged).words > 0.98
    assert coverage_of(trec, subset).tokens < 0.9 and coverage_of(trec, subset).words < 0.7


class _ScriptedHandler(http.server.BaseHTTPRequestHandler):
    """Serves `server.body`: announced or not (`server.announce`), in pieces of `server.piece` bytes, `server.pause`
    seconds apart; after the first half it waits for `server.release` (a threading.Event) when one is set."""

    def do_GET(self):
        server = self.server
        self.send_response(200)
        if server.announce:
            self.send_header("Content-Length", str(len(server.body)))
        self.end_headers()
        half = len(server.body) // 2
        try:
            for start in range(0, len(server.body), server.piece):
                if server.release is not None and start >= half:
                    server.release.wait(10)
                self.wfile.write(server.body[start : start + server.piece])
                self.wfile.flush()
                time.sleep(server.pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def log_message(self, *args):
        pass


def scripted_server(
    body: bytes, announce: bool = True, piece: int = 1 << 20, pause: float = 0.0, release: threading.Event | None = None
):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedHandler)
    httpd.protocol_version = "HTTP/1.0"  # the body ends when the connection closes
    httpd.body, httpd.announce, httpd.piece, httpd.pause, httpd.release = body, announce, piece, pause, release
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def stop(httpd):
    httpd.shutdown()
    httpd.server_close()


def test_download_checks_the_given_sha256(tmp_path):
    body = GLOVE_LINES.encode()
    httpd, base = scripted_server(body)
    try:
        good = hashlib.sha256(body).hexdigest()
        path = download(f"{base}/g.txt", tmp_path / "ok", limits=DownloadLimits(sha256=good))
        assert path.read_bytes() == body
        with pytest.raises(EmbeddingsError) as caught:
            download(f"{base}/g.txt", tmp_path / "bad", limits=DownloadLimits(sha256="ab" * 32))
    finally:
        stop(httpd)
    assert str(caught.value) == (
        f"{base}/g.txt: SHA-256 mismatch: expected {'ab' * 32}, got {good}; the download was removed"
    )
    assert list((tmp_path / "bad").iterdir()) == []


def test_official_glove_archives_are_checked_without_a_key(tmp_path):
    """A file served as glove.6B.zip must have the sum of the real archive; this one does not."""
    assert KNOWN_SHA256["glove.6B.zip"] == "617afb2fe6cbd085c235baf7a465b96f4112bd7f7ccb2b2cbd649fed9cbcf2fb"
    httpd, base = scripted_server(b"not the real archive")
    try:
        with pytest.raises(EmbeddingsError, match="glove.6B.zip: SHA-256 mismatch: expected 617afb2f"):
            download(f"{base}/glove.6B.zip", tmp_path / "cache")
    finally:
        stop(httpd)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_trickling_server_hits_the_total_timeout(tmp_path):
    httpd, base = scripted_server(b"x" * 1000, piece=1, pause=0.02)  # 20 s for the whole body
    try:
        with pytest.raises(EmbeddingsError, match=r"download took longer than 0.3 s \(embeddings.download_timeout\)"):
            download(f"{base}/slow.txt", tmp_path / "cache", limits=DownloadLimits(total_timeout=0.3))
    finally:
        stop(httpd)
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize("announce", [True, False])
def test_downloads_beyond_the_size_limit_are_refused(tmp_path, announce):
    httpd, base = scripted_server(b"y" * 5000, announce=announce, piece=1000)
    try:
        with pytest.raises(EmbeddingsError, match="more than the limit of 2000 bytes|5000 bytes, more than the limit"):
            download(f"{base}/big.txt", tmp_path / "cache", limits=DownloadLimits(max_bytes=2000))
    finally:
        stop(httpd)
    assert list((tmp_path / "cache").iterdir()) == []


def test_concurrent_downloads_use_temporary_names_of_their_own(tmp_path):
    body = GLOVE_LINES.encode() * 1000
    release = threading.Event()
    httpd, base = scripted_server(body, piece=4096, release=release)
    cache = tmp_path / "cache"
    results, errors = [], []

    def fetch():
        try:
            results.append(download(f"{base}/g.txt", cache))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        partials: list = []
        for _ in range(500):  # both are half-way: each has its temporary file
            partials = sorted(p.name for p in cache.glob("*.part")) if cache.exists() else []
            if len(partials) == 2:
                break
            time.sleep(0.01)
        release.set()
        for thread in threads:
            thread.join(20)
    finally:
        release.set()
        stop(httpd)
    assert len(partials) == 2 and partials[0] != partials[1]
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    assert results[0].read_bytes() == body
    assert [p.name for p in cache.iterdir()] == [results[0].name]


def test_a_checked_cached_download_is_not_hashed_again_until_it_changes(tmp_path, monkeypatch):
    import llmcls.embeddings.fetch as embeddings

    body = GLOVE_LINES.encode()
    good = hashlib.sha256(body).hexdigest()
    httpd, base = scripted_server(body)
    try:
        path = download(f"{base}/g.txt", tmp_path / "cache", limits=DownloadLimits(sha256=good))
    finally:
        stop(httpd)
    hashed = []
    real = embeddings._file_sha256
    monkeypatch.setattr(embeddings, "_file_sha256", lambda p: hashed.append(p) or real(p))
    assert download(f"{base}/g.txt", tmp_path / "cache", limits=DownloadLimits(sha256=good)) == path
    assert hashed == []  # checked when downloaded, unchanged since: no second pass over the file
    path.write_bytes(body.replace(b"the", b"thx"))  # the same size, other bytes, a new modification time
    with pytest.raises(EmbeddingsError, match="the cached copy .* differs, delete it"):
        download(f"{base}/g.txt", tmp_path / "cache", limits=DownloadLimits(sha256=good))
    assert hashed == [path]
