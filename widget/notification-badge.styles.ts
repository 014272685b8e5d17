import { css } from 'lit';

export const styles = css`
  :host {
    --_bg: var(--notification-badge-background, #b91c1c);
    --_fg: var(--notification-badge-color, #ffffff);
    display: inline-block;
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
  .count--empty {
    background: transparent;
    color: inherit;
    border: 1px solid currentColor;
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
    .count--empty {
      background: Canvas;
      color: CanvasText;
    }
  }
`;
