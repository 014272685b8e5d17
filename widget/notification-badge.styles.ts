import { css } from 'lit';

/*
 * The popover (with src) is in the top layer, below the button with their inline ends aligned,
 * flipped to the other side when it would not fit (CSS anchor positioning; a browser without it
 * centers the popover, the UA default). Its colors are the UA's popover colors, Canvas and
 * CanvasText, which follow the page's color-scheme (or the \`theme\` attribute) and forced colors.
 * The count's pill follows it too (light-dark()); at zero there is no pill. (Comments stay out of the
 * css literal: they would ship in the bundle.)
 */
export const styles = css`
  :host {
    --_bg: var(--notification-badge-background, light-dark(#b91c1c, #fca5a5));
    --_fg: var(--notification-badge-color, light-dark(#fff, #111827));
    display: inline-block;
  }
  svg {
    display: block;
  }
  :host([hidden]) {
    display: none;
  }
  button {
    display: inline-flex;
    align-items: center;
    gap: 0.35em;
    min-width: 2rem;
    min-height: 2rem;
    padding: 0 0.6em;
    font: inherit;
    border-radius: 999px;
    border: 1px solid transparent;
    background: transparent;
    color: inherit;
    cursor: pointer;
  }
  button:focus-visible {
    outline: 2px solid currentColor;
    outline-offset: 2px;
  }
  .count {
    min-width: 1.4em;
    padding: 0 0.4em;
    border-radius: 999px;
    background: var(--_bg);
    color: var(--_fg);
    font-weight: 600;
    font-variant-numeric: tabular-nums;
    text-align: center;
    transition: transform 200ms;
  }
  [popovertarget] {
    anchor-name: --a;
  }
  [popover] {
    position-anchor: --a;
    inset-block: anchor(end) auto;
    inset-inline: auto anchor(self-end);
    position-try-fallbacks: flip-inline, flip-block;
    width: min(20rem, 100vw - 1rem);
    max-height: 70vh;
    padding: 0.5rem;
    border: 1px solid;
    border-radius: 0.5rem;
  }
  ul {
    list-style: none;
    margin: 0 0 0.5rem;
    padding: 0;
  }
  li {
    padding: 0.25rem 0;
  }
  [part~='mark-seen'] {
    border-color: currentColor;
  }
  @media (prefers-reduced-motion: reduce) {
    .count {
      transition: none;
    }
  }
  @media (forced-colors: active) {
    .count {
      forced-color-adjust: none;
      background: Highlight;
      color: HighlightText;
    }
  }
`;
