import { UpstreamError } from '../errors.js';

/**
 * A stream this request followed from another instance (an identical request that instance was
 * answering) stopped before its end: its upstream failed, or that instance went away or lost
 * Redis. (Its client leaving does not stop it: the leader reads on while followers elsewhere are
 * marked.) Past its 200 and first chunks, the follower can only end with an error event; this one
 * says why and that sending the request again will do, where a plain Error read as the gateway's
 * own fault.
 */
export class FollowedStreamBrokeError extends UpstreamError {
  constructor() {
    super(
      'The identical request this stream was following on another gateway instance stopped before its end (its upstream failed or that instance went away); send the request again.',
    );
  }
}
