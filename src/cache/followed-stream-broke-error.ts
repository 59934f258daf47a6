import { UpstreamError } from '../errors.js';

/**
 * A stream this request followed from another instance (an identical request that instance was
 * answering) stopped before its end: that request's client left, or its upstream failed. Past its
 * 200 and first chunks, the follower can only end with an error event; this one says why and that
 * sending the request again will do, where a plain Error read as the gateway's own fault.
 */
export class FollowedStreamBrokeError extends UpstreamError {
  constructor() {
    super(
      'The identical request this stream was following on another gateway instance stopped before its end (its client left or its upstream failed); send the request again.',
    );
  }
}
