import { css } from 'lit';

/**
 * Public custom properties (`--progress-tracker-*`) feed private ones (`--_*`), so a theme sets
 * a handful of values and the rest follows. Light or dark follows the page: the `color-scheme`
 * the host inherits (`light-dark()` picks; a page without one is light, `light dark` follows the
 * OS), or the `theme` attribute (light, dark, auto = the OS preference). Reduced motion and forced
 * colors each get their own block.
 *
 * Layout: inline-size containment on the host (for the container queries) would give it no
 * intrinsic width in flex, grid and shrink-to-fit contexts; `contain-intrinsic-inline-size`
 * gives it one (`--progress-tracker-width`, 40rem), the same in every state, never wider than its
 * container, never narrower than 18rem (or its container). In a block container it fills the line.
 * Below 30rem of its own width the steps become a vertical list. (Comments stay out of the css
 * literal: they would ship in the bundle.)
 */
export const styles = css`
  :host {
    --_accent: var(--progress-tracker-accent, light-dark(#1d4ed8, #93c5fd));
    --_success: var(--progress-tracker-success, light-dark(#15803d, #86efac));
    --_danger: var(--progress-tracker-danger, light-dark(#b91c1c, #fca5a5));
    --_bg: var(--progress-tracker-background, light-dark(#fff, #111827));
    --_fg: var(--progress-tracker-color, light-dark(#1f2937, #f3f4f6));
    --_muted: var(--progress-tracker-muted, light-dark(#4b5563, #d1d5db));
    --_border: var(--progress-tracker-border, light-dark(#d1d5db, #4b5563));
    --_radius: var(--progress-tracker-radius, 0.5rem);
    --_gap: var(--progress-tracker-gap, 0.75rem);
    --_bar-height: var(--progress-tracker-bar-height, 0.5rem);
    --_skeleton: var(--progress-tracker-skeleton, light-dark(#e5e7eb, #374151));
    --_duration: var(--progress-tracker-duration, 250ms);
    display: block;
    container-type: inline-size;
    contain-intrinsic-inline-size: var(--progress-tracker-width, 40rem);
    min-inline-size: min(18rem, 100%);
    max-inline-size: 100%;
    color: var(--_fg);
    font-family: var(--progress-tracker-font, inherit);
    text-align: start;
  }
  :host([hidden]) {
    display: none;
  }
  * {
    box-sizing: border-box;
  }
  .card {
    display: grid;
    gap: var(--_gap);
    padding: var(--_gap);
    background: var(--_bg);
    border: 1px solid var(--_border);
    border-radius: var(--_radius);
  }
  .header {
    display: grid;
    gap: calc(var(--_gap) / 2);
  }
  .bar {
    position: relative;
    height: var(--_bar-height);
    overflow: hidden;
    border-radius: 999px;
    background: var(--_skeleton);
  }
  .indicator {
    position: absolute;
    inset: 0;
    transform-origin: left;
    background: var(--_accent);
    /* Ticks arrive once a second: a linear one-second transition makes the bar glide. */
    transition: transform 1s linear, background-color var(--_duration);
  }
  :host(:dir(rtl)) .indicator,
  :host(:dir(rtl)) .step-progress > span {
    transform-origin: right;
  }
  .card--completed .indicator {
    background: var(--_success);
  }
  .card--failed .indicator,
  .card--canceled .indicator {
    background: var(--_danger);
  }
  .card--canceling .indicator {
    background: var(--_muted);
  }
  .bar--indeterminate .indicator {
    inset-inline-end: auto;
    inline-size: 40%;
    transform: none !important;
    animation: slide 1s ease-in-out infinite alternate;
  }
  @keyframes slide {
    to {
      inset-inline-start: 60%;
    }
  }
  .meta {
    display: flex;
    flex-wrap: wrap;
    align-items: baseline;
    gap: calc(var(--_gap) / 2) var(--_gap);
    font-size: 0.875rem;
  }
  .percentage {
    font-weight: 600;
    font-variant-numeric: tabular-nums;
  }
  .eta {
    color: var(--_fg);
  }
  .estimate {
    padding: 0 0.4em;
    border: 1px dashed currentColor;
    border-radius: 999px;
    font-size: 0.75rem;
  }
  .connection {
    margin-inline-start: auto;
    display: inline-flex;
    align-items: center;
    gap: 0.35em;
    color: var(--_muted);
  }
  .dot {
    width: 0.5rem;
    height: 0.5rem;
    border-radius: 50%;
    border: 1px solid currentColor;
  }
  .connection[data-state='live'] .dot {
    background: var(--_success);
    border-color: var(--_success);
  }
  .connection[data-state='offline'] .dot,
  .connection[data-state='reconnecting'] .dot {
    background: var(--_danger);
    border-color: var(--_danger);
  }
  .steps {
    display: flex;
    flex-wrap: wrap;
    gap: calc(var(--_gap) / 2);
    margin: 0;
    padding: 0;
    list-style: none;
  }
  .step {
    position: relative;
    display: grid;
    grid-template-columns: auto auto 1fr;
    grid-template-areas: 'num icon label' 'num icon status' 'bar bar bar';
    align-items: center;
    column-gap: 0.4rem;
    min-width: 8rem;
    overflow-wrap: anywhere;
    padding: 0.4rem 0.6rem;
    margin-inline-end: 1.25rem;
    border: 1px solid var(--_border);
    border-radius: var(--_radius);
    transition:
      border-color var(--_duration),
      background-color var(--_duration),
      transform var(--_duration);
  }
  .step-number {
    grid-area: num;
    font-weight: 600;
    font-variant-numeric: tabular-nums;
  }
  .step-icon {
    grid-area: icon;
    display: inline-flex;
  }
  .step-label {
    grid-area: label;
  }
  .name {
    display: contents;
  }
  .step-status {
    grid-area: status;
    font-size: 0.75rem;
    color: var(--_muted);
  }
  .step-progress {
    grid-area: bar;
    display: block;
    height: 3px;
    margin-top: 0.3rem;
    background: var(--_skeleton);
    border-radius: 999px;
    overflow: hidden;
  }
  .step-progress > span {
    display: block;
    height: 100%;
    background: var(--_accent);
    transform-origin: left;
    transition: transform 1s linear;
  }
  .separator {
    position: absolute;
    inset-inline-end: -1.1rem;
    font-size: 0.7rem;
    color: var(--_muted);
  }
  .step--completed {
    border-color: var(--_success);
  }
  .step--completed .step-icon {
    color: var(--_success);
  }
  .step--running {
    border-color: var(--_accent);
    border-width: 2px;
    transform: translateY(-1px);
  }
  .step--running .step-icon {
    color: var(--_accent);
  }
  .step--failed {
    border-color: var(--_danger);
    border-style: dashed;
    border-width: 2px;
  }
  .step--failed .step-icon,
  .step--failed .step-status {
    color: var(--_danger);
  }
  .step--pending .step-label {
    color: var(--_muted);
  }
  .step--canceled {
    border-style: dashed;
    border-width: 2px;
  }
  .spin {
    animation: spin 1s linear infinite;
  }
  @keyframes spin {
    to {
      rotate: 360deg;
    }
  }
  .error {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: calc(var(--_gap) / 2) var(--_gap);
    padding: calc(var(--_gap) / 1.5);
    border: 1px solid var(--_danger);
    border-radius: var(--_radius);
  }
  .error-icon {
    color: var(--_danger);
    display: inline-flex;
  }
  .error-text {
    display: grid;
    flex: 1 1 12rem;
  }
  .notice {
    margin: 0;
    font-size: 0.875rem;
  }
  .actions {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    justify-content: flex-end;
    gap: calc(var(--_gap) / 2);
  }
  .cancel-error {
    color: var(--_danger);
  }
  button {
    font: inherit;
    padding: 0.35rem 0.9rem;
    border-radius: var(--_radius);
    border: 1px solid var(--_border);
    background: transparent;
    color: var(--_fg);
    cursor: pointer;
  }
  .retry,
  .confirm {
    border-color: var(--_danger);
    background: var(--_danger);
    color: var(--_bg);
  }
  [aria-disabled='true'] {
    cursor: progress;
    opacity: 0.75;
  }
  button:focus-visible,
  .bar:focus-visible {
    outline: 2px solid var(--_accent);
    outline-offset: 2px;
  }
  /* Skeleton and content share one grid cell: the box is as tall as the larger, so revealing
     the content shifts nothing. */
  .body {
    display: grid;
  }
  .body--empty {
    display: none;
  }
  .skeleton,
  .content {
    grid-area: 1 / 1;
    transition:
      opacity var(--_duration) ease,
      visibility var(--_duration);
  }
  .content {
    opacity: 0;
    visibility: hidden;
  }
  .body--done .content {
    opacity: 1;
    visibility: visible;
  }
  .body--done .skeleton {
    opacity: 0;
    visibility: hidden;
  }
  .skeleton-default {
    display: grid;
    gap: 0.5rem;
  }
  .skeleton-default span,
  ::slotted([slot='skeleton']) {
    border-radius: 0.25rem;
    background: var(--_skeleton);
  }
  .skeleton-default span {
    display: block;
    height: 0.9rem;
  }
  .skeleton-default span:nth-child(2) {
    width: 85%;
  }
  .skeleton-default span:nth-child(3) {
    width: 60%;
  }
  .body--busy .skeleton {
    background-image: linear-gradient(90deg, transparent, rgb(255 255 255 / 0.35), transparent);
    background-size: 200% 100%;
    background-repeat: no-repeat;
    animation: shimmer 1.6s linear infinite;
  }
  @keyframes shimmer {
    from {
      background-position: 150% 0;
    }
    to {
      background-position: -50% 0;
    }
  }
  .visually-hidden {
    position: absolute;
    width: 1px;
    height: 1px;
    padding: 0;
    margin: -1px;
    overflow: hidden;
    clip-path: inset(50%);
    white-space: nowrap;
    border: 0;
  }
  @container (max-width: 30rem) {
    .steps {
      flex-direction: column;
    }
    .step {
      margin: 0;
    }
    .separator {
      display: none;
    }
  }
  @media (prefers-reduced-motion: reduce) {
    *,
    .indicator,
    .skeleton,
    .content {
      transition: none !important;
      animation: none !important;
    }
    .body--busy .skeleton {
      background-image: none;
    }
    .bar--indeterminate .indicator {
      inline-size: 100%;
      background: repeating-linear-gradient(-45deg, var(--_accent) 0 0.5rem, transparent 0 1rem);
    }
  }
  @media (forced-colors: active) {
    .card,
    .step,
    .error {
      border-color: CanvasText;
    }
    .bar {
      border: 1px solid CanvasText;
      background: Canvas;
    }
    .indicator,
    .step-progress > span {
      background: Highlight;
      forced-color-adjust: none;
    }
    .step--running {
      border-color: Highlight;
    }
    button {
      border-color: ButtonText;
      background: ButtonFace;
      color: ButtonText;
    }
    .skeleton-default span,
    ::slotted([slot='skeleton']) {
      background: GrayText;
    }
  }
  /* i18n (text and direction): the step arrows point the way the steps go; in a right-to-left
     language the card is dir=rtl and the bar fills from the right; producer text (labels, messages)
     is isolated so its own direction does not scramble the sentence around it. */
  .separator:dir(rtl) {
    transform: scaleX(-1);
  }
  .indicator:dir(rtl),
  .step-progress > span:dir(rtl) {
    transform-origin: right;
  }
  .step-label,
  .error-message,
  .estimate {
    unicode-bidi: isolate;
  }
`;
