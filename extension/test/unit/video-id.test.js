import assert from 'node:assert/strict';
import { test } from 'node:test';

import { isVideoId, videoIdFromUrl } from '../../src/lib/video-id.js';

const ID = 'VESeA6leQuk';

test('finds the id in every form of YouTube URL', () => {
  for (const url of [
    `https://www.youtube.com/watch?v=${ID}`,
    `https://www.youtube.com/watch?v=${ID}&list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG&index=37`,
    `https://www.youtube.com/watch?list=PLx&v=${ID}&index=37&t=5s&si=abc`,
    `https://www.youtube.com/watch?v=${ID}#t=10`,
    `http://youtube.com/watch?v=${ID}`,
    `https://m.youtube.com/watch?v=${ID}&feature=share`,
    `https://music.youtube.com/watch?v=${ID}`,
    `https://youtu.be/${ID}`,
    `https://youtu.be/${ID}?si=xyz&t=3`,
    `https://www.youtube.com/shorts/${ID}`,
    `https://www.youtube.com/shorts/${ID}/`,
    `https://www.youtube.com/embed/${ID}?autoplay=1`,
    `https://www.youtube-nocookie.com/embed/${ID}`,
    `https://www.youtube.com/live/${ID}?feature=shared`,
    `HTTPS://WWW.YOUTUBE.COM/watch?v=${ID}`,
    `https://www.youtube.com./watch?v=${ID}`,
  ]) {
    assert.equal(videoIdFromUrl(url), ID, url);
  }
});

test('keeps - and _ and case, which are part of ids', () => {
  assert.equal(videoIdFromUrl('https://www.youtube.com/watch?v=a-b_C-d_E-f'), 'a-b_C-d_E-f');
});

test('finds no id where the URL names no video', () => {
  for (const url of [
    'https://www.youtube.com/',
    'https://www.youtube.com/feed/subscriptions',
    'https://www.youtube.com/results?search_query=shoes',
    'https://www.youtube.com/@somechannel',
    'https://www.youtube.com/channel/UC1234567890',
    'https://www.youtube.com/watch',
    'https://www.youtube.com/watch?v=',
    'https://www.youtube.com/watch?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG',
    `https://www.youtube.com/watch?V=${ID}`,
    `https://www.youtube.com/shorts/`,
    `https://www.youtube.com/playlist?list=${ID}`,
  ]) {
    assert.equal(videoIdFromUrl(url), null, url);
  }
});

test('refuses ids of the wrong length or with other characters', () => {
  for (const v of ['VESeA6leQu', 'VESeA6leQukX', 'VESeA6leQu!', 'VESeA6leQu%20', 'VESeA6le.uk', 'VESeA6leQuk/x']) {
    assert.equal(videoIdFromUrl(`https://www.youtube.com/watch?v=${encodeURIComponent(v)}`), null, v);
  }
  assert.equal(videoIdFromUrl('https://youtu.be/VESeA6leQu'), null);
  assert.equal(videoIdFromUrl('https://www.youtube.com/embed/VESeA6leQukk'), null);
});

test('refuses other sites, other schemes and things that are not URLs', () => {
  for (const input of [
    `https://evil.example/watch?v=${ID}`,
    `https://www.youtube.com.evil.example/watch?v=${ID}`,
    `https://notyoutube.com/watch?v=${ID}`,
    `https://youtu.be.evil.example/${ID}`,
    `ftp://www.youtube.com/watch?v=${ID}`,
    `javascript:alert('${ID}')`,
    `www.youtube.com/watch?v=${ID}`,
    ID,
    '',
    '   ',
    null,
    undefined,
    42,
    {},
  ]) {
    assert.equal(videoIdFromUrl(input), null, String(input));
  }
});

test('isVideoId accepts exactly 11 id characters', () => {
  assert.ok(isVideoId(ID));
  assert.ok(!isVideoId(`${ID} `));
  assert.ok(!isVideoId(ID.slice(1)));
  assert.ok(!isVideoId(null));
});
