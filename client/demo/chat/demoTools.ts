import { tool, type KeyrackTools } from '../../sdk';

/**
 * The demo's one tool, run in the browser: the model asks, the page answers from its own clock,
 * and the SDK sends the result back for the model to put into words.
 */
export const getTime = tool<{ timezone?: string }, { timezone: string; time: string }>({
  description: 'The current date and time in a time zone.',
  parameters: {
    type: 'object',
    properties: { timezone: { type: 'string', description: 'An IANA time zone such as Europe/Paris.', default: 'UTC' } },
  },
  execute({ timezone = 'UTC' }) {
    try {
      const time = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'long', timeZone: timezone }).format(new Date());
      return { timezone, time };
    } catch {
      // Sent back to the model as the call's error, so it can say so or try another zone.
      throw new Error(`unknown time zone ${JSON.stringify(timezone)}`);
    }
  },
});

export const DEMO_TOOLS: KeyrackTools = { get_time: getTime };
