// The recipient pitch page: one shared player, shortlist and comments, and player events.
// Plain JS, no libraries, no build step. Nothing global: everything lives in this closure.
'use strict';

(() => {
  const main = document.querySelector('main[data-base-path]');
  const audio = document.getElementById('player-audio');
  if (!main || !audio) {
    return;
  }

  const base = main.dataset.basePath;
  const nowPlaying = document.getElementById('now-playing');
  const PROGRESS_EVERY_MS = 10000;
  const SEEK_THRESHOLD_S = 1.5;
  const BATCH_DELAY_MS = 2000;
  const MAX_BATCH = 100;
  const MAX_QUEUE = 1000;

  const uuid = () => {
    if (typeof crypto.randomUUID === 'function') {
      return crypto.randomUUID();
    }
    // Pages served over plain HTTP to a non-local host have no randomUUID: build a v4 by hand.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };

  const sessionId = uuid();
  const ms = (seconds) => (Number.isFinite(seconds) && seconds > 0 ? Math.round(seconds * 1000) : 0);

  // ---------------------------------------------------------------- event queue

  let queue = [];
  let inFlight = false;
  let timer = null;
  let retryDelay = BATCH_DELAY_MS;
  let stopped = false; // the link stopped working (410/404): nothing more to send
  let urgentPending = false; // an urgent event waits for the request in flight

  const schedule = (delay) => {
    if (timer === null && !stopped) {
      timer = setTimeout(() => {
        timer = null;
        flush();
      }, delay);
    }
  };

  const flush = () => {
    if (inFlight || stopped || queue.length === 0) {
      return;
    }
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    const batch = queue.slice(0, MAX_BATCH);
    queue = queue.slice(batch.length);
    inFlight = true;
    urgentPending = false;
    fetch(`${base}/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ events: batch }),
      credentials: 'same-origin',
      keepalive: true,
    })
      .then((response) => {
        if (response.ok) {
          return 'sent';
        }
        if (response.status === 404 || response.status === 410) {
          return 'stop';
        }
        // 408, 429 and 5xx are worth retrying; any other refusal would be refused again.
        if (response.status === 408 || response.status === 429 || response.status >= 500) {
          return 'retry';
        }
        return 'drop';
      })
      .catch(() => 'retry')
      .then((outcome) => {
        inFlight = false;
        if (outcome === 'stop') {
          stopped = true;
          queue = [];
          return;
        }
        if (outcome === 'retry') {
          queue = batch.concat(queue).slice(-MAX_QUEUE);
          schedule(retryDelay);
          retryDelay = Math.min(retryDelay * 2, 60000);
          return;
        }
        retryDelay = BATCH_DELAY_MS;
        if (urgentPending || queue.length >= MAX_BATCH) {
          flush();
        } else if (queue.length > 0) {
          schedule(BATCH_DELAY_MS);
        }
      });
  };

  const enqueue = (event, urgent) => {
    if (stopped) {
      return;
    }
    queue.push(event);
    if (queue.length > MAX_QUEUE) {
      queue = queue.slice(-MAX_QUEUE);
    }
    if (urgent) {
      urgentPending = true;
      flush();
    }
    schedule(BATCH_DELAY_MS);
  };

  // Leaving the page: what is queued goes with sendBeacon, which outlives the page.
  const beaconQueue = () => {
    if (stopped || typeof navigator.sendBeacon !== 'function') {
      flush();
      return;
    }
    while (queue.length > 0) {
      const batch = queue.slice(0, MAX_BATCH);
      const blob = new Blob([JSON.stringify({ events: batch })], { type: 'application/json' });
      if (!navigator.sendBeacon(`${base}/events`, blob)) {
        break; // over the browser's beacon budget: keep them for the next send
      }
      queue = queue.slice(batch.length);
    }
  };

  // ---------------------------------------------------------------- player state

  const rows = Array.from(main.querySelectorAll('li[data-track-id]'));
  const tracks = new Map(
    rows.map((row) => [
      row.dataset.trackId,
      {
        id: row.dataset.trackId,
        row,
        title: row.dataset.title || '',
        artists: row.dataset.artists || '',
        playButton: row.querySelector('.btn-play'),
      },
    ]),
  );

  let current = null; // the track loaded in the player
  let playing = false; // between 'playing' and the pause/end/skip that reports it
  let playedReported = false; // pitch_track_played sent for this load
  let listenedMs = 0; // played since the previous report for the current track
  let lastTime = null; // currentTime at the previous timeupdate while playing
  let lastPosition = 0; // the last known position, for a seek's from_ms
  let lastWall = null; // performance.now() at that position, while playing
  let seekFrom = null;
  let errorRetries = 0;
  let resumeAt = null; // where to carry on after reloading an expired stream URL
  let restarting = false; // playing an ended track again: its jump back to 0 is no seek

  const makeEvent = (type, extra) => ({
    event_type: type,
    event_id: uuid(),
    event_version: 1,
    occurred_at: new Date().toISOString(),
    session_id: sessionId,
    track_id: current.id,
    position_ms: ms(audio.currentTime),
    ...extra,
  });

  // Adds the time played since the last timeupdate (a jump over 1.5 s is a seek, not listening).
  const accumulate = () => {
    const now = audio.currentTime;
    if (playing && lastTime !== null && !audio.seeking) {
      const delta = now - lastTime;
      if (delta > 0 && delta <= SEEK_THRESHOLD_S) {
        listenedMs += delta * 1000;
      }
    }
    lastTime = now;
    lastPosition = now;
    lastWall = performance.now();
  };

  // Reports the listening since the previous report and starts counting again.
  const report = (type, urgent) => {
    const listened = Math.max(0, Math.round(listenedMs));
    listenedMs = 0;
    enqueue(makeEvent(type, { listened_ms: listened }), urgent);
  };

  const describe = (track) =>
    `${track.row.querySelector('.track-number')?.textContent || ''}. ${track.title}${
      track.artists ? ` — ${track.artists}` : ''
    }`;

  const updateUi = () => {
    const isPlaying = current !== null && !audio.paused && !audio.ended;
    for (const track of tracks.values()) {
      const on = track === current && isPlaying;
      track.playButton.setAttribute('aria-pressed', on ? 'true' : 'false');
      track.row.classList.toggle('is-current', track === current);
    }
    if (current === null) {
      return;
    }
    nowPlaying.classList.remove('is-error');
    if (audio.ended) {
      nowPlaying.textContent = `Finished: ${describe(current)}`;
    } else if (isPlaying) {
      nowPlaying.textContent = `Now playing: ${describe(current)}`;
    } else {
      nowPlaying.textContent = `Paused: ${describe(current)}`;
    }
  };

  const showPlayerError = (text) => {
    nowPlaying.textContent = text;
    nowPlaying.classList.add('is-error');
  };

  const start = () => {
    audio.play().catch((error) => {
      if (error && error.name === 'AbortError') {
        return; // another load replaced this one
      }
      if (error && error.name === 'NotAllowedError') {
        showPlayerError('Your browser blocked playback. Use the player controls to start it.');
        return;
      }
      updateUi();
    });
  };

  const load = (track) => {
    current = track;
    playing = false;
    playedReported = false;
    listenedMs = 0;
    lastTime = null;
    lastPosition = 0;
    seekFrom = null;
    errorRetries = 0;
    resumeAt = null;
    restarting = false;
    audio.src = `${base}/tracks/${encodeURIComponent(track.id)}/stream`;
    updateUi();
  };

  const onPlayClick = (track) => {
    if (track === current) {
      if (audio.paused || audio.ended) {
        restarting = audio.ended;
        start();
      } else {
        audio.pause();
      }
      return;
    }
    if (current !== null && playing && !audio.ended) {
      accumulate();
      report('pitch_track_skipped', true);
    }
    playing = false; // the old track's pause (if the browser sends one) is not the user's
    load(track);
    start();
  };

  for (const track of tracks.values()) {
    track.playButton.addEventListener('click', () => onPlayClick(track));
  }

  audio.addEventListener('playing', () => {
    if (current === null) {
      return;
    }
    playing = true;
    lastTime = audio.currentTime;
    lastWall = performance.now();
    errorRetries = 0;
    if (!playedReported) {
      playedReported = true;
      enqueue(makeEvent('pitch_track_played', {}), true);
    }
    updateUi();
  });

  audio.addEventListener('timeupdate', () => {
    if (current === null) {
      return;
    }
    if (!playing || audio.paused) {
      lastPosition = audio.currentTime;
      return;
    }
    accumulate();
    if (listenedMs >= PROGRESS_EVERY_MS) {
      report('pitch_track_progress', false);
    }
  });

  audio.addEventListener('pause', () => {
    if (current !== null && playing && !audio.ended) {
      accumulate();
      playing = false;
      report('pitch_track_paused', true);
    }
    updateUi();
  });

  audio.addEventListener('ended', () => {
    if (current !== null && (playing || playedReported)) {
      accumulate();
      playing = false;
      report('pitch_track_completed', true);
      playedReported = false; // playing it again is a new listen
    }
    updateUi();
  });

  audio.addEventListener('play', updateUi);

  audio.addEventListener('seeking', () => {
    // currentTime is already the target here. The position before it is the last one seen,
    // plus what played since then (timeupdate comes only every quarter second or so).
    if (current === null || seekFrom !== null) {
      return;
    }
    let from = lastPosition;
    if (playing && lastWall !== null) {
      const wall = Math.min((performance.now() - lastWall) / 1000, 0.3);
      const played = wall > 0 ? wall * (audio.playbackRate || 1) : 0;
      listenedMs += played * 1000;
      from += played;
    }
    seekFrom = Number.isFinite(audio.duration) ? Math.min(from, audio.duration) : from;
  });

  audio.addEventListener('seeked', () => {
    if (current === null) {
      return;
    }
    const from = seekFrom === null ? lastPosition : seekFrom;
    seekFrom = null;
    lastTime = audio.currentTime;
    lastPosition = audio.currentTime;
    if (resumeAt !== null || restarting) {
      resumeAt = null; // our own seek back after reloading an expired stream URL
      restarting = false;
      return;
    }
    enqueue(
      {
        ...makeEvent('pitch_track_seeked', {}),
        properties: { from_ms: ms(from) },
      },
      false,
    );
  });

  audio.addEventListener('loadedmetadata', () => {
    if (resumeAt !== null && resumeAt > 0) {
      audio.currentTime = resumeAt;
    } else {
      resumeAt = null;
    }
  });

  audio.addEventListener('error', () => {
    if (current === null || !audio.error) {
      return;
    }
    const wasPlaying = playing || !audio.paused;
    if (playing) {
      report('pitch_track_paused', true);
    }
    playing = false;
    // The stream URL is short-lived: after a long pause, fetch a fresh one once and carry on.
    if (errorRetries < 1 && audio.error.code !== audio.error.MEDIA_ERR_SRC_NOT_SUPPORTED) {
      errorRetries += 1;
      resumeAt = lastPosition;
      audio.src = `${base}/tracks/${encodeURIComponent(current.id)}/stream`;
      if (wasPlaying) {
        start();
      }
      return;
    }
    updateUi();
    showPlayerError(
      `Could not play “${current.title}”. Reload the page to try again; if it keeps failing, ` +
        'the link may have expired.',
    );
  });

  const leaving = () => {
    if (current !== null && playing) {
      accumulate();
      if (listenedMs > 0) {
        report('pitch_track_progress', false);
      }
    }
    beaconQueue();
  };

  window.addEventListener('pagehide', leaving);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') {
      leaving();
    }
  });

  // ---------------------------------------------------------------- feedback

  const postFeedback = (body) =>
    fetch(`${base}/feedback`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'same-origin',
    }).then((response) => {
      if (!response.ok) {
        const error = new Error(`feedback refused: ${response.status}`);
        error.status = response.status;
        throw error;
      }
      return response;
    });

  const failure = (error, what) => {
    if (error && (error.status === 410 || error.status === 404)) {
      return `Couldn't save your ${what}: this link no longer works.`;
    }
    if (error && error.status === 429) {
      return `Couldn't save your ${what}: too many attempts. Try again in a minute.`;
    }
    return `Couldn't save your ${what}. Check your connection and try again.`;
  };

  const setStatus = (element, text, isError) => {
    element.textContent = text;
    element.classList.toggle('is-error', isError);
  };

  for (const track of tracks.values()) {
    const { row, id } = track;
    const status = row.querySelector('.track-status');
    const shortlist = row.querySelector('.btn-shortlist');
    const form = row.querySelector('form.comment');
    const textarea = form.querySelector('textarea');
    let saving = false;

    shortlist.addEventListener('click', () => {
      if (saving) {
        return;
      }
      const was = shortlist.getAttribute('aria-pressed') === 'true';
      const want = !was;
      saving = true;
      shortlist.setAttribute('aria-pressed', String(want));
      shortlist.setAttribute('aria-busy', 'true');
      setStatus(status, 'Saving…', false);
      postFeedback({ track_id: id, shortlisted: want })
        .then(() => setStatus(status, want ? 'Saved to your shortlist' : 'Removed from your shortlist', false))
        .catch((error) => {
          shortlist.setAttribute('aria-pressed', String(was));
          setStatus(status, failure(error, 'shortlist'), true);
        })
        .finally(() => {
          saving = false;
          shortlist.removeAttribute('aria-busy');
        });
    });

    let savedComment = textarea.value;
    let sending = false;
    form.addEventListener('submit', (submitEvent) => {
      submitEvent.preventDefault();
      if (sending) {
        return;
      }
      const comment = textarea.value;
      sending = true;
      setStatus(status, 'Saving…', false);
      postFeedback({ track_id: id, comment })
        .then((response) => response.json().catch(() => ({})))
        .then((saved) => {
          // The server keeps the comment as it stored it (trimmed; empty clears it).
          if (saved && (typeof saved.comment === 'string' || saved.comment === null)) {
            if (textarea.value === comment) {
              textarea.value = saved.comment || '';
            }
            savedComment = saved.comment || '';
          } else {
            savedComment = comment;
          }
          setStatus(status, 'Saved', false);
        })
        .catch((error) => {
          // The typed text stays in the box, so nothing is lost; it is just not saved yet.
          setStatus(status, failure(error, 'comment'), true);
        })
        .finally(() => {
          sending = false;
        });
    });
    textarea.addEventListener('input', () => {
      if (textarea.value !== savedComment && !status.classList.contains('is-error')) {
        setStatus(status, '', false);
      }
    });
  }
})();
