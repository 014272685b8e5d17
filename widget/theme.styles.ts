import { css } from 'lit';

/**
 * The `theme` attribute both elements share (light, dark, auto = the OS preference): it sets the
 * host's `color-scheme`, which every `light-dark()` color of the element follows. Without it the
 * element inherits the page's color-scheme. One sheet for both, adopted once by the browser.
 */
export const themeStyles = css`
  :host([theme='light']) {
    color-scheme: light;
  }
  :host([theme='dark']) {
    color-scheme: dark;
  }
  :host([theme='auto']) {
    color-scheme: light dark;
  }
`;
